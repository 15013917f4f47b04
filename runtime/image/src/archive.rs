//! Indexes an uncompressed tar archive once, without extracting it: each
//! entry's path maps to the byte range of its data in the archive file, and
//! symbolic and hard links are resolved within the archive.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};
use std::sync::Arc;

use crate::blob::FileRegion;
use crate::error::Error;

/// How many links a lookup follows before giving up (link loops).
const MAX_LINK_HOPS: usize = 32;

/// One entry of the archive.
#[derive(Debug, Clone)]
enum Entry {
    File {
        offset: u64,
        size: u64,
    },
    /// A symbolic or hard link, its target already made an archive path.
    Link(Option<String>),
    Dir,
}

/// The index of a tar archive: entry path -> data range.
#[derive(Debug)]
pub(crate) struct TarIndex {
    file: Arc<File>,
    entries: HashMap<String, Entry>,
}

impl TarIndex {
    /// Opens and indexes the archive at `path` (`display` names it in messages).
    pub(crate) fn open(path: &Path, display: &str) -> Result<TarIndex, Error> {
        let file = File::open(path).map_err(|e| Error::io(display, e))?;
        TarIndex::from_file(file, display)
    }

    /// Indexes the archive held by `file` (rewound, read from its start),
    /// e.g. an unlinked spool of standard input. An archive that stops
    /// after an entry without the end-of-archive blocks every tar writer
    /// adds is cut short: a truncated stream, refused.
    pub(crate) fn from_file(file: File, display: &str) -> Result<TarIndex, Error> {
        let file_len = file.metadata().map_err(|e| Error::io(display, e))?.len();
        reject_compressed(&file, display)?;

        let mut reader = &file;
        io::Seek::rewind(&mut reader).map_err(|e| Error::io(display, e))?;
        let mut archive = tar::Archive::new(reader);
        let mut entries = HashMap::new();
        let iter = archive
            .entries_with_seek()
            .map_err(|e| tar_error(display, e, true))?;
        let mut last_end = 0;
        for entry in iter {
            let first = entries.is_empty();
            let entry = entry.map_err(|e| tar_error(display, e, first))?;
            last_end = entry
                .raw_file_position()
                .saturating_add(entry.size().div_ceil(512) * 512);
            let raw_path = entry.path().map_err(|e| tar_error(display, e, first))?;
            let Some(name) = normalize(Path::new(""), &raw_path) else {
                continue; // an entry outside the archive root (`..`): never a blob
            };
            let kind = entry.header().entry_type();
            let value = if kind.is_file() || kind == tar::EntryType::Continuous {
                let offset = entry.raw_file_position();
                let size = entry.size();
                let end = offset.saturating_add(size);
                if end > file_len {
                    return Err(Error::TruncatedTar {
                        path: display.to_owned(),
                        message: format!(
                            "entry {name} needs {size} bytes at offset {offset}, the file ends at {file_len}"
                        ),
                    });
                }
                Entry::File { offset, size }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| tar_error(display, e, false))?;
                let target = target.and_then(|target| {
                    if kind.is_symlink() {
                        let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                        normalize(parent, &target)
                    } else {
                        normalize(Path::new(""), &target)
                    }
                });
                Entry::Link(target)
            } else if kind.is_dir() {
                Entry::Dir
            } else {
                continue;
            };
            entries.insert(name, value);
        }
        if last_end > 0 && file_len < last_end.saturating_add(512) {
            return Err(Error::TruncatedTar {
                path: display.to_owned(),
                message: format!(
                    "the archive ends after {file_len} bytes, without the end-of-archive blocks"
                ),
            });
        }
        Ok(TarIndex {
            file: Arc::new(file),
            entries,
        })
    }

    /// Whether the archive has no entries at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The data of the regular file at `name`, following links.
    pub(crate) fn lookup(&self, name: &str) -> Option<FileRegion> {
        let mut name = name.to_owned();
        for _ in 0..MAX_LINK_HOPS {
            match self.entries.get(&name)? {
                Entry::File { offset, size } => {
                    return Some(FileRegion {
                        file: Arc::clone(&self.file),
                        offset: *offset,
                        len: *size,
                    });
                }
                Entry::Link(target) => name = target.clone()?,
                Entry::Dir => return None,
            }
        }
        None
    }
}

/// Normalises `path` relative to directory `base` of the archive into a
/// slash-separated archive path; `None` if it climbs above the root.
/// An absolute `path` is taken from the archive root.
fn normalize(base: &Path, path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let start = if path.is_absolute() {
        Path::new("")
    } else {
        base
    };
    for component in start.components().chain(path.components()) {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// Rejects compressed archives by their magic bytes, with a clear message.
/// A block with the `ustar` magic at offset 257 is a tar header whatever
/// its first bytes (a file name) look like.
fn reject_compressed(file: &File, display: &str) -> Result<(), Error> {
    let mut block = [0u8; 512];
    let mut filled = 0;
    while filled < block.len() {
        match file.read_at(&mut block[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(display, e)),
        }
    }
    let is_tar_header = block.get(257..262) == Some(b"ustar".as_slice()) && filled == block.len();
    if let Some(compression) = compression_of(&block[..filled]).filter(|_| !is_tar_header) {
        return Err(Error::CompressedArchive {
            path: display.to_owned(),
            compression,
        });
    }
    Ok(())
}

/// The compression whose magic bytes start `data`, if any.
pub(crate) fn compression_of(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if data.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    }
}

/// Maps an error of the `tar` crate: a cut-off block is a truncated archive;
/// a bad first header means the file is not a tar archive at all.
fn tar_error(display: &str, err: io::Error, first: bool) -> Error {
    let message = err.to_string();
    if err.kind() == io::ErrorKind::UnexpectedEof || message.contains("failed to read entire block")
    {
        Error::TruncatedTar {
            path: display.to_owned(),
            message,
        }
    } else if first {
        Error::NotAnImage {
            path: display.to_owned(),
            reason: format!("neither a directory nor a tar archive ({message})"),
        }
    } else {
        Error::InvalidTar {
            path: display.to_owned(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h
    }

    #[test]
    fn resolves_links_and_prefixes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        // A first file whose name looks like bzip2 magic: still a tar.
        b.append_data(
            &mut header(tar::EntryType::Regular, 3),
            "./BZh9/data",
            &b"abc"[..],
        )
        .unwrap();
        let mut h = header(tar::EntryType::Link, 0);
        b.append_link(&mut h, "hard", "BZh9/data").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "dir/sym", "../hard").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "loop1", "loop2").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "loop2", "loop1").unwrap();
        let mut h = header(tar::EntryType::Symlink, 0);
        b.append_link(&mut h, "escape", "../../etc/passwd").unwrap();
        b.finish().unwrap();
        drop(b);

        let index = TarIndex::open(&path, "a.tar").unwrap();
        for name in ["BZh9/data", "hard", "dir/sym"] {
            let region = index.lookup(name).unwrap();
            assert_eq!(region.len, 3, "{name}");
            let mut buf = [0u8; 3];
            region.file.read_exact_at(&mut buf, region.offset).unwrap();
            assert_eq!(&buf, b"abc");
        }
        assert!(index.lookup("loop1").is_none());
        assert!(index.lookup("escape").is_none());
        assert!(index.lookup("BZh9").is_none());
    }

    #[test]
    fn an_archive_cut_between_entries_is_truncated() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(tar::EntryType::Regular, 3), "a", &b"abc"[..])
            .unwrap();
        let whole = b.into_inner().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cut.tar");
        // The header and the data block of `a`, without the two zero blocks.
        std::fs::write(&path, &whole[..1024]).unwrap();
        let err = TarIndex::open(&path, "cut.tar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cut.tar: truncated tar archive: the archive ends after 1024 bytes, without the end-of-archive blocks"
        );
        std::fs::write(&path, &whole).unwrap();
        assert!(
            TarIndex::open(&path, "cut.tar")
                .unwrap()
                .lookup("a")
                .is_some()
        );
    }
}
