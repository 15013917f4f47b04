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

mod ahead;
mod atomic;
pub mod aws_credentials;
pub use atomic::write_file as atomic_write;
pub mod artifact;
pub mod bindings;
pub mod buildinfo;
pub mod builtin;
pub mod cache;
pub mod compile;
pub mod compile_cache;
pub mod credentials;
pub mod descriptors;
pub mod destination;
pub mod engine;
pub mod error;
mod host;
mod host_platform;
pub mod iidfile;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod metadata;
pub mod network;
pub mod options;
pub mod plugins;
pub mod policy;
pub mod reach;
pub mod registry_auth;
pub mod report;
pub mod session;
pub mod sigv4;
mod state;
pub mod text;
pub mod tree;

pub use engine::{Engine, EngineConfig};
pub use error::Error;
pub use instance::{InstanceResult, InstanceSpec, Status};
pub use limits::Limits;
pub use options::OutputSpec;
pub use report::{LogLevel, Reporter};
pub use session::{Session, SessionResult};
