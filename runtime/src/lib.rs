//! outport runs container-image exporters and cache backends as sandboxed
//! WebAssembly components: the image's layers and config go in, each
//! component writes its output (an OCI or docker tarball, a root
//! filesystem, a registry push, a cache) and answers with a response kept
//! apart by instance ID.
//!
//! The main types:
//!
//! - [`Engine`]: the shared wasmtime engine (pooling allocator, epoch
//!   deadlines, compiled components cached on disk, third-party components
//!   compiled in a child process under limits).
//! - [`Session`]: exports one image (read and verified by
//!   [`outport_image::open`]) to several outputs at once, each an instance
//!   with its own store, [`Limits`] and destination, under a [`Policy`];
//!   it returns a [`SessionResult`] with each instance's [`InstanceResult`]
//!   kept apart, a failed one's [`Failure`] carrying a [`FailureKind`] and
//!   its stable code.
//! - [`OutputSpec`]: one `--output` (or `--export-cache`) specification,
//!   parsed from buildctl-style CSV; [`assign_ids`] gives each its ID.
//! - [`Reporter`]: receives each instance's log lines and progress (the CLI
//!   draws them; an embedder supplies its own, or [`Silent`]).
//! - [`EXPORTERS`], [`CACHE_BACKENDS`]: the built-in components embedded in
//!   the binary.
//!
//! [`cli`] is the `outport` command itself (the binary only calls
//! [`cli::main`]). Everything else is internal, laid out by the data path
//! (see `docs/architecture.md`): `run/` (the session), `instance/` (one
//! instance), `engine/`, `host/` (one file per interface of the WIT
//! contract in `wit/`), `output/` (staging and placing), `sandbox/`,
//! `outbound/` (the host's own credentials and signing), `components/`,
//! `buildinfo/`, `cache/`, `image/`.

pub(crate) mod buildinfo;
pub(crate) mod cache;
pub mod cli;
pub(crate) mod components;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod host;
pub(crate) mod image;
pub(crate) mod input;
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
pub use run::context::ImageSource;
pub use run::output_spec::{OutputSpec, assign_ids};
pub use run::reporter::{LogLevel, Reporter, Silent};
pub use run::session::{Session, SessionResult};
pub use sandbox::limits::Limits;
pub use sandbox::policy::{Policy, PolicyError};
