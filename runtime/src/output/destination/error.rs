//! Why a staged output was not placed.

use std::io;
use std::path::PathBuf;

use crate::output::tree::TreeError;

/// Why a staged output was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The staged tree breaks a rule (too large, too deep, a refused entry)
    /// or could not be read.
    #[error(transparent)]
    Tree(TreeError),
    /// The instance's deadline passed while checking or placing.
    #[error("time limit exceeded while checking and placing the output")]
    Deadline,
    /// The exporter did not write the file it was granted.
    #[error("the exporter did not write its output file")]
    Missing,
    /// The output file is not a regular file.
    #[error("the exporter's output {name} is {what}, not a regular file")]
    NotRegular {
        /// The file's name (one line).
        name: String,
        /// What it is instead ("a symlink").
        what: &'static str,
    },
    /// The output is a directory and the destination standard output.
    #[error("a directory cannot go to standard output")]
    DirectoryToStdout,
    /// The output is a directory and the destination the docker daemon.
    #[error("a directory cannot be loaded into the docker daemon")]
    DirectoryToDaemon,
    /// Reading, moving or streaming the output failed.
    #[error("{what}: {source}")]
    Io {
        /// What the host was doing.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The existing destination changed while a cache was exported.
    #[error("{0}")]
    Changed(String),
}

impl From<TreeError> for PlaceError {
    fn from(e: TreeError) -> Self {
        match e {
            TreeError::Deadline => PlaceError::Deadline,
            e => PlaceError::Tree(e),
        }
    }
}

/// An I/O error while doing `what`.
pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> PlaceError {
    let what = what.into();
    move |source| PlaceError::Io { what, source }
}

/// Why the destination cannot take an instance's output.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The component writes nothing, yet `dest=` is given.
    #[error("this exporter takes no dest=")]
    NoDestination,
    /// A directory output with `dest=-`.
    #[error("dest=- (standard output) needs a file output, this one writes a directory")]
    DirectoryToStdout,
    /// A directory output to be loaded into the docker daemon.
    #[error(
        "only a file (a docker tarball) can be loaded into the docker daemon, this output is a directory"
    )]
    DirectoryToDaemon,
    /// Loading into the docker daemon asked of a component that writes
    /// nothing.
    #[error("this exporter writes nothing to load into the docker daemon")]
    NothingToLoad,
    /// A file output whose destination is an existing directory.
    #[error("dest {} is a directory; this output is a file", .0.display())]
    IsDirectory(PathBuf),
    /// A directory output whose destination is an existing file.
    #[error("dest {} is a file; this output is a directory", .0.display())]
    IsFile(PathBuf),
}
