//! Atomic placement of outputs. An instance writes into a fresh staging
//! directory next to its destination (the only directory it is granted);
//! when it succeeds the output is checked and moved into place in one
//! rename, when it fails the staging directory is removed, so a destination
//! never holds a partial output.
//!
//! The host's hands on the staging tree are the guest's: every access
//! after the guest ran goes through a `cap-std` handle of the staging
//! directory (see [`crate::output::tree`]), no symlink is followed, a file output
//! must be a regular file, and streaming it to standard output is bounded
//! by the instance's limits.
//!
//! A staging directory is named `.NAME.outport-staging-XXXXXXXX` and holds
//! an advisory lock (`flock`) for the life of its run. A run killed with
//! SIGKILL leaves it behind unlocked; the next run staging in the same
//! directory (or `outport gc DIR`) removes such leftovers, and nothing else.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read as _, Write as _};

use cap_std::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use crate::host::bindings::types::{Destination, OutputKind};
use crate::output::tree::{self, Leftovers, Links, Rules, TreeError};

use super::stale::{collect_stale, make_locked};

/// Name under which the staging directory is preopened in the guest.
pub const PREOPEN: &str = "/out";

/// Existing files up to this size are copied into a cache export's
/// staging tree; larger ones become placeholders (see [`Staging::seed`]).
const COPY_BELOW: u64 = 1 << 20;

/// Bytes per write when streaming an output to standard output.
const STREAM_CHUNK: usize = 1 << 20;

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
fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> PlaceError {
    let what = what.into();
    move |source| PlaceError::Io { what, source }
}

/// Where an instance's output goes in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A path on the host.
    Path(PathBuf),
    /// The runtime's standard output (`dest=-`), for a file output.
    Stdout,
}

impl Target {
    /// Parses a `dest=` value.
    pub fn parse(dest: &str) -> Target {
        if dest == "-" {
            Target::Stdout
        } else {
            Target::Path(PathBuf::from(dest))
        }
    }
}

/// How a finished output is checked before it is placed.
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    /// Whether a directory output may hold symlinks.
    pub links: Links,
    /// The instance's output limit.
    pub max_bytes: u64,
    /// The instance's deadline.
    pub deadline: Instant,
}

/// An existing blob a cache export was given as a placeholder (see
/// [`Staging::seed`]).
#[derive(Debug)]
struct Placeholder {
    /// Its path in the tree.
    rel: PathBuf,
    /// The placeholder's inode and change time, to see whether the guest
    /// replaced or wrote it.
    ino: u64,
    ctime: (i64, i64),
}

/// A staging directory for one instance's output.
pub struct Staging {
    /// The directory the staging directory (and the destination) are in.
    parent: Dir,
    parent_path: PathBuf,
    /// The staging directory's name in `parent`.
    name: OsString,
    /// The staging directory, locked while this run lives.
    dir: Dir,
    target: Target,
    created_parents: Vec<PathBuf>,
    placeholders: Vec<Placeholder>,
    done: bool,
}

impl Staging {
    /// Creates the staging directory for `target`: beside it (same
    /// filesystem, so the final rename is atomic), or in the temporary
    /// directory for standard output. Missing parent directories are
    /// created, and removed again if the output is not committed. Leftover
    /// staging directories of dead runs in the same directory are removed
    /// first.
    pub fn create(target: Target) -> io::Result<Staging> {
        let (parent_path, stem) = match &target {
            Target::Stdout => (std::env::temp_dir(), OsString::from("stdout")),
            Target::Path(p) => {
                let parent = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let stem = p.file_name().map(OsStr::to_os_string).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
                })?;
                (parent, stem)
            }
        };
        let created_parents = create_parents(&parent_path)?;
        let made = (|| {
            let parent = Dir::open_ambient_dir(&parent_path, ambient_authority())?;
            collect_stale(&parent);
            let (name, dir) = make_locked(&parent, &stem)?;
            Ok((parent, name, dir))
        })();
        let (parent, name, dir) = match made {
            Ok(made) => made,
            Err(e) => {
                remove_empty(&created_parents);
                return Err(e);
            }
        };
        Ok(Staging {
            parent,
            parent_path,
            name,
            dir,
            target,
            created_parents,
            placeholders: Vec::new(),
            done: false,
        })
    }

    /// The staging directory on the host (preopened as [`PREOPEN`]).
    pub fn path(&self) -> PathBuf {
        self.parent_path.join(&self.name)
    }

    /// Checks that the final destination can take an output of `kind`, and
    /// returns what the guest is told about its destination.
    pub fn grant(&self, kind: OutputKind) -> Result<Destination, String> {
        match (&self.target, kind) {
            (_, OutputKind::None) => Err("this exporter takes no dest=".to_string()),
            (Target::Stdout, OutputKind::Directory) => Err(
                "dest=- (standard output) needs a file output, this one writes a directory"
                    .to_string(),
            ),
            (Target::Stdout, OutputKind::File) => Ok(Destination {
                preopen: PREOPEN.to_string(),
                file: Some(self.file_name()),
            }),
            (Target::Path(p), OutputKind::File) => {
                if p.is_dir() {
                    return Err(format!(
                        "dest {} is a directory; this output is a file",
                        p.display()
                    ));
                }
                Ok(Destination {
                    preopen: PREOPEN.to_string(),
                    file: Some(self.file_name()),
                })
            }
            (Target::Path(p), OutputKind::Directory) => {
                if p.exists() && !p.is_dir() {
                    return Err(format!(
                        "dest {} is a file; this output is a directory",
                        p.display()
                    ));
                }
                Ok(Destination {
                    preopen: PREOPEN.to_string(),
                    file: None,
                })
            }
        }
    }

    fn file_name(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".to_string()),
        }
    }

    /// Fills the staging directory with what is already at a directory
    /// destination, so an output can add to it (a build cache), without
    /// giving the guest any way to change what is there: files at the top
    /// are copied (the guest may replace them); files below get stand-ins:
    /// copies of small files (manifests and configs a backend reads back),
    /// placeholders for larger ones (sparse files of the same size that
    /// take no room and read as zeros). When
    /// the output is committed, each stand-in the guest left as it was
    /// becomes a hard link to the existing file again (made by the host);
    /// one the guest removed stays removed, one it replaced keeps the
    /// guest's bytes. Symlinks and special files are left out. Nothing to
    /// do when the destination does not exist yet.
    pub fn seed(&mut self) -> io::Result<()> {
        let Some(existing) = self.existing_dir()? else {
            return Ok(());
        };
        // (directory in the destination, directory in the staging tree, path)
        let mut pending = vec![(existing, self.dir.try_clone()?, PathBuf::new())];
        while let Some((from, to, rel)) = pending.pop() {
            for entry in from.entries()? {
                let entry = entry?;
                let name = entry.file_name();
                let kind = entry.file_type()?;
                let path = rel.join(&name);
                if kind.is_dir() {
                    if path.components().count() >= tree::MAX_DEPTH {
                        continue;
                    }
                    to.create_dir(&name)?;
                    pending.push((
                        from.open_dir_nofollow(&name)?,
                        to.open_dir_nofollow(&name)?,
                        path,
                    ));
                } else if kind.is_file() {
                    let len = entry.metadata()?.len();
                    // Top-level files and small blobs (manifests, configs:
                    // what a backend reads back) are copies.
                    let top = rel.as_os_str().is_empty();
                    let stand_in = to.create(&name)?;
                    if top || len <= COPY_BELOW {
                        let mut src = from.open_with(&name, &no_follow_read())?;
                        io::copy(&mut src, &mut &stand_in)?;
                    } else {
                        stand_in.set_len(len)?;
                    }
                    if !top {
                        let meta = stand_in.metadata()?;
                        self.placeholders.push(Placeholder {
                            rel: path,
                            ino: meta.ino(),
                            ctime: (meta.ctime(), meta.ctime_nsec()),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The destination directory, when it exists (a symlink is not taken).
    fn existing_dir(&self) -> io::Result<Option<Dir>> {
        let Target::Path(dest) = &self.target else {
            return Ok(None);
        };
        let Some(name) = dest.file_name() else {
            return Ok(None);
        };
        match self.parent.symlink_metadata(name) {
            Ok(meta) if meta.is_dir() => Ok(Some(self.parent.open_dir_nofollow(name)?)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A handle on the staging directory, for reading what the guest wrote.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Checks the finished output against `checks` and moves it into
    /// place. For a file output, `destination.file` is the name the guest
    /// was told to write; it must be a regular file.
    pub fn commit(mut self, destination: &Destination, checks: &Checks) -> Result<(), PlaceError> {
        let links = match destination.file {
            // Besides the output file, the tree may hold the guest's own
            // leftovers; they are sized, not placed.
            Some(_) => Links::Keep,
            None => checks.links,
        };
        let rules = Rules {
            links,
            max_bytes: checks.max_bytes,
            deadline: checks.deadline,
        };
        tree::check(&self.dir, &rules)?;
        match (&self.target, &destination.file) {
            (target, Some(name)) => {
                let meta = match self.dir.symlink_metadata(name) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(PlaceError::Missing);
                    }
                    Err(e) => return Err(io_error("cannot read the output file")(e)),
                };
                if !meta.is_file() {
                    let what = if meta.is_symlink() {
                        "a symlink"
                    } else if meta.is_dir() {
                        "a directory"
                    } else {
                        "a special file"
                    };
                    return Err(PlaceError::NotRegular {
                        name: crate::sandbox::text::one_line(name).into_owned(),
                        what,
                    });
                }
                match target {
                    Target::Stdout => self.stream_to_stdout(name, checks.deadline)?,
                    Target::Path(dest) => {
                        let dest_name = dest.file_name().unwrap_or(OsStr::new("output"));
                        self.dir
                            .rename(name, &self.parent, dest_name)
                            .map_err(io_error("cannot move the output into place"))?;
                    }
                }
            }
            (Target::Path(dest), None) => {
                self.restore_placeholders()?;
                let dest_name = dest.file_name().unwrap_or(OsStr::new("output"));
                replace_dir(&self.parent, &self.name, dest_name)
                    .map_err(io_error("cannot move the output into place"))?;
            }
            (Target::Stdout, None) => return Err(PlaceError::DirectoryToStdout),
        }
        self.done = true;
        // The staging name now holds the previous output, or nothing.
        let _ = tree::remove(&self.parent, &self.name);
        Ok(())
    }

    /// Copies the regular file `name` of the staging tree to standard
    /// output, opened without following a link, no further than its size
    /// when opened and no later than `deadline`.
    fn stream_to_stdout(&self, name: &str, deadline: Instant) -> Result<(), PlaceError> {
        let file = self
            .dir
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
        let mut reader = file.into_std().take(meta.len());
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

    /// Turns the placeholders the guest left untouched back into hard
    /// links to the existing files (see [`Staging::seed`]).
    fn restore_placeholders(&self) -> Result<(), PlaceError> {
        if self.placeholders.is_empty() {
            return Ok(());
        }
        let existing = self
            .existing_dir()
            .map_err(io_error("cannot read the existing destination"))?
            .ok_or_else(|| {
                PlaceError::Changed("the existing destination went away during the export".into())
            })?;
        for p in &self.placeholders {
            let untouched = match self.dir.symlink_metadata(&p.rel) {
                Ok(meta) => {
                    meta.is_file()
                        && meta.ino() == p.ino
                        && (meta.ctime(), meta.ctime_nsec()) == p.ctime
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(io_error(format!("cannot read {}", p.rel.display()))(e)),
            };
            if !untouched {
                continue;
            }
            let mut tmp = p.rel.clone().into_os_string();
            tmp.push(".outport-link");
            existing
                .hard_link(&p.rel, &self.dir, &tmp)
                .and_then(|()| self.dir.rename(&tmp, &self.dir, &p.rel))
                .map_err(|e| {
                    PlaceError::Changed(format!(
                        "the existing {} changed during the export: {e}",
                        p.rel.display()
                    ))
                })?;
        }
        Ok(())
    }

    /// True when the staging directory's filesystem has no room left (the
    /// likely cause of a failed write).
    pub fn filesystem_full(&self) -> bool {
        rustix::fs::fstatvfs(&self.dir).is_ok_and(|s| s.f_bavail == 0 || s.f_favail == 0)
    }

    /// Removes the staging directory (the output is not placed), and says
    /// what could not be removed.
    pub fn discard(mut self) -> Leftovers {
        self.done = true;
        let left = tree::remove(&self.parent, &self.name);
        remove_empty(&self.created_parents);
        left
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = tree::remove(&self.parent, &self.name);
            remove_empty(&self.created_parents);
        }
    }
}

fn no_follow_read() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).follow(FollowSymlinks::No);
    options
}

/// Puts directory `staged` of `parent` at `dest`, replacing what is there
/// in one step: a rename that refuses to replace, else an exchange of the
/// two (the previous output then sits at `staged`, removed by the caller).
/// Two runs placing the same destination at once each leave one whole
/// tree, never a mix.
fn replace_dir(parent: &Dir, staged: &OsStr, dest: &OsStr) -> io::Result<()> {
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
fn create_parents(dir: &Path) -> io::Result<Vec<PathBuf>> {
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
fn remove_empty(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
