//! Staging directories' names and locks: each is `.STEM.outport-staging-`
//! and eight hex digits, locked (`flock`) for the life of its run, so the
//! next run staging in the same parent can recognise and remove the
//! leftovers of a run that died, and nothing else.

use std::ffi::{OsStr, OsString};
use std::io;
use std::time::{Duration, SystemTime};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions};

use crate::output::tree::{self, Leftovers};

/// What marks a staging directory's name.
const STAGING_MARK: &str = ".outport-staging-";

/// How long an unlocked staging directory must be unchanged before another
/// run removes it.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// Opens directory `name` of `parent`, not following a symlink, with a
/// descriptor `flock` takes (cap-std's own directory handles may be
/// `O_PATH`, which it does not).
pub(super) fn open_lockable(parent: &Dir, name: &OsStr) -> io::Result<Dir> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .follow(FollowSymlinks::No)
        .maybe_dir(true);
    let file = parent.open_with(name, &options)?;
    if !file.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(Dir::from_std_file(file.into_std()))
}

/// Makes `.STEM.outport-staging-XXXXXXXX` in `parent` and locks it.
pub(super) fn make_locked(parent: &Dir, stem: &OsStr) -> io::Result<(OsString, Dir)> {
    for _ in 0..16 {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let mut name = OsString::from(".");
        name.push(stem);
        name.push(format!("{STAGING_MARK}{}", hex::encode(random)));
        match parent.create_dir(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let dir = open_lockable(parent, &name)?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        return Ok((name, dir));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free staging directory name",
    ))
}

/// Whether `name` is one [`make_locked`] makes: `.STEM`, the mark, then
/// exactly eight lowercase hex digits.
fn is_staging_name(name: &str) -> bool {
    let Some((stem, suffix)) = name.rsplit_once(STAGING_MARK) else {
        return false;
    };
    stem.len() > 1
        && stem.starts_with('.')
        && suffix.len() == 8
        && suffix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Removes the staging directories of dead runs in `parent`: named like
/// one, not locked, and not changed for [`STALE_AFTER`]. Returns how many
/// were removed and what could not be.
pub fn collect_stale(parent: &Dir) -> (u64, Leftovers) {
    let mut removed = 0;
    let mut left = Leftovers::default();
    let Ok(entries) = parent.entries() else {
        return (removed, left);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !is_staging_name(&name.to_string_lossy()) {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(dir) = open_lockable(parent, &name) else {
            continue;
        };
        let recent = dir
            .dir_metadata()
            .and_then(|m| m.modified())
            .map(|t| t.into_std())
            .is_ok_and(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age < STALE_AFTER)
            });
        if recent {
            continue;
        }
        // A live run holds the lock; a dead one's was released with it.
        if rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        let gone = tree::remove(parent, &name);
        if gone.is_empty() {
            removed += 1;
        } else {
            left.count += gone.count;
            if left.first.is_none() {
                left.first = gone.first;
            }
        }
    }
    (removed, left)
}
