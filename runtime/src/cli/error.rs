//! The command line's one map from what stopped a command to its exit code
//! (as ripgrep's `main` does): a command returns the code of a run that
//! went through, or a [`CliError`], printed once, here.

use std::fmt;

/// Every instance succeeded (or the command did what it was asked).
pub const EXIT_OK: u8 = 0;
/// The input was bad, an instance failed, or a file could not be written.
pub const EXIT_FAILED: u8 = 1;
/// A usage mistake found before anything ran: the command line, a policy,
/// an output specification, a component that cannot be loaded.
pub const EXIT_USAGE: u8 = 2;

/// Why a command stopped.
#[derive(Debug)]
pub enum CliError {
    /// A usage mistake found before anything ran.
    Usage(String),
    /// Something failed while running.
    Failed(String),
}

impl CliError {
    /// A usage mistake.
    pub fn usage(e: impl fmt::Display) -> CliError {
        CliError::Usage(e.to_string())
    }

    /// A failure while running.
    pub fn failed(e: impl fmt::Display) -> CliError {
        CliError::Failed(e.to_string())
    }

    /// The exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Failed(_) => EXIT_FAILED,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// What a command returns: the exit code of a run that went through.
pub type CliResult = Result<u8, CliError>;

/// The exit code of `result`, printing its error (one line) if it has one.
pub fn exit_code(result: CliResult) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
