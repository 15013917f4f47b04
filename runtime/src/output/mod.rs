//! Where an instance's output goes: its staging directory, no-follow access
//! to the tree a guest wrote, atomic placement at the destination, and the
//! files that describe a run (metadata file, iidfile).

pub(crate) mod atomic;
pub(crate) mod beneath;
pub mod destination;
pub(crate) mod follow;
pub mod iidfile;
pub mod metadata;
mod stale;
pub mod tree;
