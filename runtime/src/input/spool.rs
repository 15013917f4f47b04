//! Streams (standard input, a daemon's `docker save`) are spooled whole
//! into an unlinked temporary file of the run, then indexed as any tar
//! input: nothing is read as an image before the stream has ended, and the
//! file disappears with the process, whatever happens.

use std::fs::File;
use std::io::{self, IsTerminal};

use super::error::InputError;

/// An unlinked temporary file in `$TMPDIR` (Linux `O_TMPFILE` where the
/// filesystem has it): no name exists that another process could open or
/// that a crash could leave behind.
pub(crate) fn spool_file(input: &str) -> Result<File, InputError> {
    let dir = std::env::temp_dir();
    tempfile::tempfile_in(&dir).map_err(|source| InputError::Spool {
        input: input.to_owned(),
        dir: dir.display().to_string(),
        source,
    })
}

/// Copies standard input, to its end, into a spool file (std's copy
/// splices from a pipe where it can).
pub(crate) fn stdin() -> Result<File, InputError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(InputError::StdinTerminal);
    }
    let mut file = spool_file("-")?;
    io::copy(&mut stdin.lock(), &mut file).map_err(|source| InputError::Stdin { source })?;
    Ok(file)
}
