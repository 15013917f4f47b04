//! Why a policy file was refused.

use crate::sandbox::allow_list::NotAHost;
use crate::sandbox::limits::MAX_SECONDS;

/// Why a policy was refused; `Display` is one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// The text is not TOML, or not a policy (an unknown key, a bad value,
    /// a refused key or host): toml's first line, with the line of the file
    /// it is on when known.
    #[error("{}", syntax(*.line, .source))]
    Syntax {
        /// The line of the file (1-based), when toml knows it.
        line: Option<usize>,
        /// toml's error.
        source: Box<toml::de::Error>,
    },
    /// A `sha256:` key that is not `sha256:` and 64 lowercase hex digits.
    #[error(
        "components.\"{key}\": a digest key is sha256: and 64 hex digits, in lowercase{}",
        if *.upper { " (write the digest as `outport inspect` prints it)" } else { "" }
    )]
    DigestKey {
        /// The key as written.
        key: String,
        /// Whether it has upper-case letters.
        upper: bool,
    },
    /// A `network-hosts` entry that is not a host.
    #[error("network-hosts: {0}")]
    NetworkHosts(#[source] NotAHost),
    /// A limit over what the engine's instance slots hold.
    #[error("{at}.{name} = {value} is more than the engine supports (at most {max})")]
    EngineMax {
        /// The table (`limits`, `components."oci".limits`).
        at: String,
        /// The limit's key.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The engine's most.
        max: usize,
    },
    /// A duration limit over ten years.
    #[error(
        "{at}.{name} = {value} is more than the longest limit supported ({MAX_SECONDS} s, ten years)"
    )]
    TooLong {
        /// The table (`limits`, `components."oci".limits`).
        at: String,
        /// The limit's key.
        name: &'static str,
        /// Its value, in seconds.
        value: u64,
    },
}

/// toml's message on one line (it spans several: a snippet of the file;
/// its first line names the problem and the key), after the line it is on.
fn syntax(line: Option<usize>, e: &toml::de::Error) -> String {
    let message = e.message().replace('\n', " ");
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}
