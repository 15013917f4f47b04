//! Host implementations of the `outport:exporter` interfaces, one file per
//! interface, each a thin layer over the runtime's own types.

pub mod bindings;
pub mod files;
// The WIT interface is named `host`, as is this folder.
#[allow(clippy::module_inception)]
pub mod host;
pub mod http;
pub mod image;
pub(crate) mod platform;
pub mod stdio;
