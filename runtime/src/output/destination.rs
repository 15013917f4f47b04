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

mod error;
mod placing;
mod seed;

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::host::bindings::types::{Destination, OutputKind};
use crate::output::tree::{self, Leftovers, Links, Rules};

use super::stale::{collect_stale, make_locked};
use error::io_error;
pub use error::{GrantError, PlaceError};
use placing::{create_parents, remove_empty, replace_dir};
use seed::Placeholder;

/// Name under which the staging directory is preopened in the guest.
pub const PREOPEN: &str = "/out";

/// Where an instance's output goes in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A path on the host.
    Path(PathBuf),
    /// The runtime's standard output (`dest=-`), for a file output.
    Stdout,
    /// The docker daemon (`load` without `dest=`), for a file output: the
    /// host streams it to the daemon, nothing is placed.
    Daemon,
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
    /// created, and removed again if the output is not committed. The
    /// docker daemon's output is staged in the temporary directory too.
    /// Leftover
    /// staging directories of dead runs in the same directory are removed
    /// first.
    pub fn create(target: Target) -> io::Result<Staging> {
        let (parent_path, stem) = match &target {
            Target::Stdout => (std::env::temp_dir(), OsString::from("stdout")),
            Target::Daemon => (std::env::temp_dir(), OsString::from("docker-load")),
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
    pub fn grant(&self, kind: OutputKind) -> Result<Destination, GrantError> {
        let file = match (&self.target, kind) {
            (Target::Daemon, OutputKind::None) => return Err(GrantError::NothingToLoad),
            (_, OutputKind::None) => return Err(GrantError::NoDestination),
            (Target::Daemon, OutputKind::Directory) => return Err(GrantError::DirectoryToDaemon),
            (Target::Daemon, OutputKind::File) => Some(self.file_name()),
            (Target::Stdout, OutputKind::Directory) => return Err(GrantError::DirectoryToStdout),
            (Target::Stdout, OutputKind::File) => Some(self.file_name()),
            (Target::Path(p), OutputKind::File) if p.is_dir() => {
                return Err(GrantError::IsDirectory(p.clone()));
            }
            (Target::Path(_), OutputKind::File) => Some(self.file_name()),
            (Target::Path(p), OutputKind::Directory) if p.exists() && !p.is_dir() => {
                return Err(GrantError::IsFile(p.clone()));
            }
            (Target::Path(_), OutputKind::Directory) => None,
        };
        Ok(Destination {
            preopen: PREOPEN.to_string(),
            file,
        })
    }

    fn file_name(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".to_string(),
            Target::Daemon => "image.tar".to_string(),
            Target::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".to_string()),
        }
    }

    /// A handle on the staging directory, for reading what the guest wrote.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Checks the finished output against `checks` and moves it into
    /// place ([`Staging::check`], then [`Staging::place`]).
    pub fn commit(self, destination: &Destination, checks: &Checks) -> Result<(), PlaceError> {
        self.check(destination, checks)?;
        self.place(destination, checks.deadline)
    }

    /// Checks the finished output against `checks`. For a file output,
    /// `destination.file` is the name the guest was told to write; it must
    /// be a regular file.
    pub fn check(&self, destination: &Destination, checks: &Checks) -> Result<(), PlaceError> {
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
        let Some(name) = &destination.file else {
            return Ok(());
        };
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
        Ok(())
    }

    /// The checked output file, opened without following a link, and its
    /// size when opened (for the docker daemon to load).
    pub fn open_output(
        &self,
        destination: &Destination,
    ) -> Result<(std::fs::File, u64), PlaceError> {
        let name = destination
            .file
            .as_deref()
            .ok_or(PlaceError::DirectoryToDaemon)?;
        placing::open_regular(&self.dir, name)
    }

    /// Moves the checked output into place: renamed to its destination,
    /// streamed to standard output (no later than `deadline`), or, for the
    /// docker daemon (which the caller loaded it into), removed.
    pub fn place(mut self, destination: &Destination, deadline: Instant) -> Result<(), PlaceError> {
        match (&self.target, &destination.file) {
            (Target::Daemon, Some(_)) => {}
            (Target::Stdout, Some(name)) => placing::stream_to_stdout(&self.dir, name, deadline)?,
            (Target::Path(dest), Some(name)) => {
                let dest_name = dest.file_name().unwrap_or(OsStr::new("output"));
                self.dir
                    .rename(name, &self.parent, dest_name)
                    .map_err(io_error("cannot move the output into place"))?;
            }
            (Target::Path(dest), None) => {
                self.restore_placeholders()?;
                let dest_name = dest.file_name().unwrap_or(OsStr::new("output"));
                replace_dir(&self.parent, &self.name, dest_name)
                    .map_err(io_error("cannot move the output into place"))?;
            }
            (Target::Stdout, None) => return Err(PlaceError::DirectoryToStdout),
            (Target::Daemon, None) => return Err(PlaceError::DirectoryToDaemon),
        }
        self.done = true;
        // The staging name now holds the previous output, or nothing.
        let _ = tree::remove(&self.parent, &self.name);
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

#[cfg(test)]
mod tests;
