//! The sandbox: the policy and the limits it sets, the imports a component
//! may have, the hosts it may reach, what each built-in may reach, each
//! instance's share of the open-file limit, and how guest text is shown.

pub mod allow_list;
pub mod descriptors;
pub mod imports;
pub mod limits;
pub mod policy;
pub mod reach;
pub mod text;
