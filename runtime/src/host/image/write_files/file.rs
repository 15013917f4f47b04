//! One file of `blob.write-files`: created beneath the directory, given
//! its mode and time; why a list stops.

use std::fs::{File, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use rustix::fs::{Timespec, Timestamps, UTIME_OMIT, futimens};

use crate::host::bindings::image::NewFile;
use crate::output::beneath::{Beneath, BeneathError};
use crate::sandbox::text::truncate;

/// Permission bits a guest may set (as `files.set-mode`): never
/// set-user-ID or set-group-ID.
const ALLOWED_MODE: u32 = 0o1777;

/// Why the list stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// A file could not be created or given its mode.
    #[error("write-files: {path}: {source}")]
    File {
        /// The file's path, as the guest gave it (shown truncated, escaped).
        path: String,
        #[source]
        source: BeneathError,
    },
    /// Its mode could not be set.
    #[error("write-files: {path}: setting its mode: {source}")]
    Mode {
        /// The file's path.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Its bytes could not be written.
    #[error("write-files: {path}: writing: {source}")]
    Write {
        /// The file's path.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The blob failed (damaged, unreadable).
    #[error(transparent)]
    Blob(outport_image::Error),
    /// The instance's deadline passed.
    #[error("write-files: time limit of {0} s exceeded")]
    Deadline(u64),
}

/// Fails once `deadline` has passed.
pub(super) fn check_deadline(deadline: Option<Instant>, timeout: u64) -> Result<(), WriteError> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(WriteError::Deadline(timeout)),
        _ => Ok(()),
    }
}

/// The path of `file` as messages show it (truncated, escaped).
pub(super) fn shown(file: &NewFile) -> String {
    format!("{:?}", truncate(&file.path, 200))
}

/// Creates `file` (empty) beneath the directory of `beneath`.
pub(super) fn create(beneath: &mut Beneath<'_>, file: &NewFile) -> Result<File, WriteError> {
    beneath
        .create(&file.path)
        .map_err(|source| WriteError::File {
            path: shown(file),
            source,
        })
}

/// Gives `out`, written, the mode and time `file` asks for.
pub(super) fn finish(out: &File, file: &NewFile) -> Result<(), WriteError> {
    let mode = Permissions::from_mode(file.mode & ALLOWED_MODE);
    out.set_permissions(mode)
        .map_err(|source| WriteError::Mode {
            path: shown(file),
            source,
        })?;
    if let Some(mtime) = file.mtime {
        set_mtime(out, mtime);
    }
    Ok(())
}

/// Sets the modification time of `file` to `seconds` since 1970, its
/// access time untouched; a time the filesystem cannot hold leaves the
/// time of the writing (as the contract says).
fn set_mtime(file: &File, seconds: u64) {
    let Ok(seconds) = i64::try_from(seconds) else {
        return;
    };
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: seconds,
            tv_nsec: 0,
        },
    };
    let _ = futimens(file, &times);
}
