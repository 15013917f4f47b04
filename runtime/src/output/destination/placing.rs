//! The filesystem steps of placing an output: missing parents created
//! (and removed again), a directory swapped in at its destination in one
//! step, a file streamed to standard output; all without following a
//! symlink.

use std::ffi::OsStr;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};

use super::error::{PlaceError, io_error};

/// Bytes per write when streaming an output to standard output.
const STREAM_CHUNK: usize = 1 << 20;

/// Copies the regular file `name` of the staging tree to standard
/// output, opened without following a link, no further than its size
/// when opened and no later than `deadline`.
pub(super) fn stream_to_stdout(dir: &Dir, name: &str, deadline: Instant) -> Result<(), PlaceError> {
    let (file, len) = open_regular(dir, name)?;
    let mut reader = file.take(len);
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; STREAM_CHUNK];
    loop {
        if Instant::now() >= deadline {
            return Err(PlaceError::Deadline);
        }
        let n = reader
            .read(&mut buf)
            .map_err(io_error("cannot read the output file"))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(io_error("cannot write to standard output"))?;
    }
    out.flush()
        .map_err(io_error("cannot write to standard output"))
}

/// The regular file `name` of the staging tree, opened without following
/// a link, and its size when opened.
pub(super) fn open_regular(dir: &Dir, name: &str) -> Result<(std::fs::File, u64), PlaceError> {
    let file = dir
        .open_with(name, &no_follow_read())
        .map_err(io_error("cannot open the output file"))?;
    let meta = file
        .metadata()
        .map_err(io_error("cannot read the output file"))?;
    if !meta.is_file() {
        return Err(PlaceError::NotRegular {
            name: crate::sandbox::text::one_line(name).into_owned(),
            what: "not a regular file any more",
        });
    }
    Ok((file.into_std(), meta.len()))
}

pub(super) fn no_follow_read() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    options
}

/// Puts directory `staged` of `parent` at `dest`, replacing what is there
/// in one step: a rename that refuses to replace, else an exchange of the
/// two (the previous output then sits at `staged`, removed by the caller).
/// Two runs placing the same destination at once each leave one whole
/// tree, never a mix.
pub(super) fn replace_dir(parent: &Dir, staged: &OsStr, dest: &OsStr) -> io::Result<()> {
    use rustix::fs::{RenameFlags, renameat_with};
    for _ in 0..8 {
        match renameat_with(parent, staged, parent, dest, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {}
            Err(e) => return Err(e.into()),
        }
        match renameat_with(parent, staged, parent, dest, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // Removed by another run in between: rename again.
            Err(e) if e == rustix::io::Errno::NOENT => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(
        "the destination kept changing while being replaced",
    ))
}

/// Creates `dir` and its missing ancestors; returns those created, outermost
/// first.
pub(super) fn create_parents(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            // Another instance made it at the same moment: not ours to remove.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => {
                remove_empty(&created);
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// Removes directories (innermost last in `dirs`) that are empty.
pub(super) fn remove_empty(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}
