//! Errors that stop a whole run (as opposed to one instance failing, which
//! is reported in that instance's [`InstanceResult`](crate::InstanceResult)).

/// A run-level error. `Display` is one line naming what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input image could not be read or is invalid.
    #[error(transparent)]
    Input(#[from] outport_image::Error),
    /// An `--output` or `--export-cache` specification is malformed.
    #[error("--output {spec:?}: {message}")]
    OutputSpec {
        /// The specification as given.
        spec: String,
        /// What is wrong with it.
        message: String,
    },
    /// The policy file could not be read or was refused.
    #[error("policy file {}: {source}", path.display())]
    Policy {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: crate::sandbox::policy::error::PolicyError,
    },
    /// Two instances have the same ID, or another usage mistake.
    #[error("{0}")]
    Usage(String),
    /// The wasmtime engine could not be set up.
    #[error("engine: {0}")]
    Engine(String),
    /// A component could not be compiled or linked.
    #[error("component {0}: {1}")]
    Component(String, String),
    /// Compiling a third-party component failed or passed its limits.
    #[error("compiling {component}: {source}")]
    Compile {
        /// The component.
        component: String,
        /// Why.
        source: CompileError,
    },
    /// A component imports something the policy does not grant.
    /// (component, import, how a policy would grant it)
    #[error("component {0} imports {1}, which the policy does not grant ({2})")]
    Import(String, String, String),
    /// The input's build info or provenance could not be made: the image,
    /// the step and the document, with its cause (see [`crate::buildinfo`]).
    #[error(transparent)]
    BuildInfo(#[from] crate::buildinfo::error::ImageError),
    /// A build cache could not be read or is invalid (see [`crate::cache`]).
    #[error("{path}: {message}")]
    Cache {
        /// The file or cache concerned.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Writing a run-level file (metadata file) failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Why a component did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// It took longer than its compile time limit (seconds).
    #[error("time limit of {0} s exceeded")]
    Time(u64),
    /// The compiler ran out of its address space (bytes).
    #[error("memory limit of {0} bytes exceeded")]
    Memory(u64),
    /// Running the compiler process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The component does not compile: the compiler's one line.
    #[error("{0}")]
    Component(String),
}
