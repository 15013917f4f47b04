//! A cache export's staging tree seeded from what is already at its
//! destination: copies and placeholders the guest may replace, turned
//! back into hard links to the existing files when the output is placed.

use std::io;
use std::path::PathBuf;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, MetadataExt as _};

use super::Staging;
use super::error::{PlaceError, io_error};
use super::placing::no_follow_read;
use crate::output::destination::Target;
use crate::output::tree;

/// An existing blob a cache export was given as a placeholder (see
/// [`Staging::seed`]).
#[derive(Debug)]
pub(super) struct Placeholder {
    /// Its path in the tree.
    rel: PathBuf,
    /// The placeholder's inode and change time, to see whether the guest
    /// replaced or wrote it.
    ino: u64,
    ctime: (i64, i64),
}

/// Existing files up to this size are copied into a cache export's
/// staging tree; larger ones become placeholders (see [`Staging::seed`]).
pub(super) const COPY_BELOW: u64 = 1 << 20;

impl Staging {
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

    /// Turns the placeholders the guest left untouched back into hard
    /// links to the existing files (see [`Staging::seed`]).
    pub(super) fn restore_placeholders(&self) -> Result<(), PlaceError> {
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
}
