//! Where the files of an input are: a directory, or the entries of an
//! indexed tar archive. Layout and docker-save readers look files up by their
//! relative path through this one interface.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::archive::TarIndex;
use crate::blob::FileRegion;
use crate::error::Error;

/// The files of an input image.
#[derive(Debug)]
pub(crate) enum Source {
    /// A directory on disk.
    Dir { root: PathBuf, display: String },
    /// An uncompressed tar archive, indexed.
    Tar { index: TarIndex, display: String },
}

impl Source {
    /// Opens the directory or archive at `path`; `display` names it in messages.
    pub(crate) fn open(path: &Path, display: &str) -> Result<Source, Error> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(display, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir {
                root: path.to_owned(),
                display: display.to_owned(),
            });
        }
        Source::tar(TarIndex::open(path, display)?, display)
    }

    /// The archive held by `file` (a regular file, read by offset).
    pub(crate) fn from_file(file: File, display: &str) -> Result<Source, Error> {
        Source::tar(TarIndex::from_file(file, display)?, display)
    }

    fn tar(index: TarIndex, display: &str) -> Result<Source, Error> {
        if index.is_empty() {
            return Err(Error::NotAnImage {
                path: display.to_owned(),
                reason: "empty file or empty tar archive".to_owned(),
            });
        }
        Ok(Source::Tar {
            index,
            display: display.to_owned(),
        })
    }

    /// The input as named in messages.
    pub(crate) fn display(&self) -> &str {
        match self {
            Source::Dir { display, .. } | Source::Tar { display, .. } => display,
        }
    }

    /// How messages name the file `rel` of the input.
    pub(crate) fn member_display(&self, rel: &str) -> String {
        format!("{}/{rel}", self.display().trim_end_matches('/'))
    }

    /// The bytes of file `rel`, or `None` if there is no such (regular) file.
    /// `rel` must be relative and must not climb out of the input.
    pub(crate) fn locate(&self, rel: &str) -> Result<Option<FileRegion>, Error> {
        if !is_safe_relative(rel) {
            return Err(Error::invalid(
                self.display(),
                format!("path \"{rel}\" is not inside the input"),
            ));
        }
        match self {
            Source::Tar { index, .. } => {
                let rel = rel.trim_start_matches("./");
                Ok(index.lookup(rel))
            }
            Source::Dir { root, .. } => {
                let path = root.join(rel);
                let file = match File::open(&path) {
                    Ok(file) => file,
                    Err(e)
                        if e.kind() == io::ErrorKind::NotFound
                            || e.kind() == io::ErrorKind::NotADirectory =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(Error::io(self.member_display(rel), e)),
                };
                let meta = file
                    .metadata()
                    .map_err(|e| Error::io(self.member_display(rel), e))?;
                if !meta.is_file() {
                    return Ok(None);
                }
                Ok(Some(FileRegion {
                    file: Arc::new(file),
                    offset: 0,
                    len: meta.len(),
                }))
            }
        }
    }

    /// The whole content of file `rel` (at most `limit` bytes), or `None` if absent.
    pub(crate) fn read(&self, rel: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(region) = self.locate(rel)? else {
            return Ok(None);
        };
        let name = self.member_display(rel);
        if region.len > limit {
            return Err(Error::invalid(
                name,
                format!("{} bytes is more than the limit of {limit}", region.len),
            ));
        }
        read_region(&region, &name).map(Some)
    }
}

/// Reads a whole region (a small file) into memory.
pub(crate) fn read_region(region: &FileRegion, name: &str) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(region.len)
        .map_err(|_| Error::invalid(name, "file too large to read into memory"))?;
    let mut out = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match region
            .file
            .read_at(&mut out[filled..], region.offset + filled as u64)
        {
            Ok(0) => {
                return Err(Error::io(
                    name,
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ended after {filled} of {len} bytes"),
                    ),
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(name, e)),
        }
    }
    Ok(out)
}

/// Whether `rel` is a relative path that stays inside the input.
fn is_safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}
