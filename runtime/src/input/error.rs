//! Why the input image could not be read: a usage mistake in the INPUT
//! argument (exit 2), or a failure reading it (exit 1); why a registry
//! image could not be pulled ([`PullError`]).

use http::Method;

/// The transports, as usage messages list them.
pub(crate) const TRANSPORTS: &str = "oci:DIR[:REF], oci-archive:FILE[:REF], \
docker-archive:FILE[:REF], docker-daemon:NAME[:TAG|@DIGEST], docker://REFERENCE, \
- (standard input), or a path";

/// An input that cannot be read. `Display` is one line naming the input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A `xyz:` prefix that is no transport, and no path either.
    #[error(
        "input {input:?}: unknown transport \"{transport}:\"; use {}",
        TRANSPORTS
    )]
    UnknownTransport {
        /// The argument.
        input: String,
        /// The prefix.
        transport: String,
    },
    /// A transport with nothing after it.
    #[error("input {input:?}: expected {what} after the transport")]
    Empty {
        /// The argument.
        input: String,
        /// What was expected.
        what: &'static str,
    },
    /// `docker-daemon:` with what is no image name or ID.
    #[error("input {input:?}: {message}")]
    DaemonName {
        /// The argument.
        input: String,
        /// What is wrong with the name.
        message: String,
    },
    /// `oci:` names something that is not a directory, or an archive
    /// transport names a directory.
    #[error("input {input:?}: {path} is {found}; {transport}: reads {expected}")]
    WrongKind {
        /// The argument.
        input: String,
        /// The path.
        path: String,
        /// What it is.
        found: &'static str,
        /// The transport.
        transport: &'static str,
        /// What the transport reads.
        expected: &'static str,
    },
    /// Standard input is a terminal: nothing is piped in.
    #[error(
        "input \"-\": standard input is a terminal; pipe an OCI archive or a docker save into it"
    )]
    StdinTerminal,
    /// Reading standard input into its spool failed.
    #[error("input \"-\": reading standard input: {source}")]
    Stdin {
        /// The I/O error.
        source: std::io::Error,
    },
    /// The spool file for a stream could not be made.
    #[error("input {input:?}: temporary file in {dir}: {source}")]
    Spool {
        /// The argument.
        input: String,
        /// The directory it was made in.
        dir: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The docker daemon could not be reached, or refused the save.
    #[error("input {input:?}: {source}")]
    Daemon {
        /// The argument.
        input: String,
        /// What the daemon said, or why it could not be asked.
        source: crate::outbound::docker_daemon::DaemonError,
    },
    /// The registry image could not be pulled.
    #[error(transparent)]
    Registry(#[from] PullError),
    /// The image read is invalid (or its file is missing).
    #[error(transparent)]
    Image(#[from] outport_image::Error),
}

impl InputError {
    /// Whether the INPUT argument itself is wrong (a usage error).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            InputError::UnknownTransport { .. }
                | InputError::Empty { .. }
                | InputError::DaemonName { .. }
                | InputError::StdinTerminal
                | InputError::Registry(PullError::Reference { .. })
        )
    }
}

/// Why an image could not be pulled. One line naming the registry, the
/// request and the answer.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference is not one.
    #[error("input {input:?}: {source}")]
    Reference {
        /// The argument.
        input: String,
        /// Why.
        #[source]
        source: outport_oci::reference::ReferenceError,
    },
    /// The docker config could not be read.
    #[error("input {input:?}: {source}")]
    Credentials {
        /// The argument.
        input: String,
        /// Why.
        #[source]
        source: crate::outbound::docker_config::CredentialsError,
    },
    /// A request failed or was answered wrongly.
    #[error("registry {registry}: {method} {path}: {message}")]
    Request {
        /// `host[:port]`.
        registry: String,
        /// The method.
        method: Method,
        /// The path asked for.
        path: String,
        /// The answer, or what went wrong.
        message: String,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] super::blob_store::StoreError),
}
