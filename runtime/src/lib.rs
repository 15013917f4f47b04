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

pub(crate) mod buildinfo;
pub(crate) mod cache;
pub mod cli;
pub(crate) mod components;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod host;
pub(crate) mod image;
pub(crate) mod instance;
pub(crate) mod outbound;
pub(crate) mod output;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod schemas;

pub use components::builtin::{Builtin, CACHE_BACKENDS, EXPORTERS};
pub use engine::{Engine, EngineConfig, LoadedComponent, Origin};
pub use error::Error;
pub use instance::{Failure, FailureKind, InstanceResult, Status, instantiate_bare};
pub use run::output_spec::{OutputSpec, assign_ids};
pub use run::reporter::{LogLevel, Reporter, Silent};
pub use run::session::{Session, SessionResult};
pub use sandbox::limits::Limits;
pub use sandbox::policy::Policy;
