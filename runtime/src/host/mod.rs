//! Host implementations of the `outport:exporter` interfaces, one file per
//! interface, each a thin layer over the runtime's own types.

pub mod files;
pub mod http;
pub mod image;
pub mod report;
pub mod stdio;
