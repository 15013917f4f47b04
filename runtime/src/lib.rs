//! outport runs container-image exporters as sandboxed WebAssembly
//! components.
//!
//! The main types:
//!
//! - [`Engine`]: the shared wasmtime engine (pooling allocator, epoch
//!   deadlines, compiled components cached on disk).
//! - [`Session`]: exports one image (read and verified by
//!   [`outport_image::open`]) to several outputs at once, each an instance
//!   with its own store and limits, and returns a [`SessionResult`] with each
//!   instance's [`InstanceResult`] kept apart.
//! - [`OutputSpec`]: one `--output` specification, parsed from buildctl-style
//!   CSV.
//!
//! The WIT contract components implement lives in `wit/` and its bindings in
//! [`bindings`]; the host side of each interface is in `host/`.

pub mod buildinfo;
pub mod cache;
pub mod components;
pub mod engine;
pub mod error;
mod host;
/// The WIT contract's generated types (`outport:exporter`), as the host sees them.
pub use host::bindings;
pub mod image;
pub mod instance;
pub mod outbound;
pub mod output;
pub mod run;
pub mod sandbox;

pub use output::atomic::write_file as atomic_write;

pub use engine::{Engine, EngineConfig};
pub use error::Error;
pub use instance::{InstanceResult, InstanceSpec, Status};
pub use run::output_spec::OutputSpec;
pub use run::reporter::{LogLevel, Reporter};
pub use run::session::{Session, SessionResult};
pub use sandbox::limits::Limits;
