//! Where components come from: the built-in exporters and cache backends
//! embedded in the binary, plugin directories, and components pulled from
//! a registry as OCI artifacts.

pub mod artifact;
pub mod builtin;
pub mod plugins;
