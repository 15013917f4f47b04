//! Creating new files beneath a directory a guest holds, for the host calls
//! that write many files at once (`blob.write-files`), at the cost of one
//! single-name `openat` a file.
//!
//! A parent directory is resolved with `openat2` (`RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`): no symlink a guest planted is followed and
//! nothing outside the directory is reached. Its handle is kept while the
//! next files go into the same parent (a layer lists a directory's files
//! together), so a file costs one `openat` of its last name relative to a
//! verified handle, with `O_CREAT | O_EXCL | O_NOFOLLOW`: whatever already
//! exists at the name, a symlink included, fails the creation. The guest is
//! blocked in the host call meanwhile, so it cannot swap a cached parent.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags, openat, openat2};

/// How often `openat2` is retried when it reports a concurrent rename
/// (`EAGAIN`).
const RETRIES: usize = 8;

/// Why a file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The path is not relative plain names (`a/b`).
    #[error("not a relative path of plain names (no empty, \".\" or \"..\" component)")]
    NotPlain,
    /// Its parent directory could not be resolved beneath the directory.
    #[error("its directory: {0}")]
    Parent(#[source] io::Error),
    /// The file itself could not be created.
    #[error("{0}")]
    Create(#[source] io::Error),
}

/// `path` split into its parent (`""` for the directory itself) and its
/// last name, if it is relative plain names.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let plain = !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|name| !name.is_empty() && name != "." && name != "..");
    if !plain {
        return None;
    }
    Some(path.rsplit_once('/').unwrap_or(("", path)))
}

/// Creates files beneath `root`, keeping the last parent it resolved.
pub struct Beneath<'a> {
    root: &'a File,
    parent: Option<(String, OwnedFd)>,
}

impl<'a> Beneath<'a> {
    /// Files go beneath `root`.
    pub fn new(root: &'a File) -> Self {
        Beneath { root, parent: None }
    }

    /// Creates `path` new, open for writing, with permission bits `0o600`
    /// (the caller sets the mode it wants once the bytes are in).
    pub fn create(&mut self, path: &str) -> Result<File, BeneathError> {
        let (parent, name) = split(path).ok_or(BeneathError::NotPlain)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let mode = Mode::from_raw_mode(0o600);
        let created = if parent.is_empty() {
            openat(self.root, name, flags | OFlags::CLOEXEC, mode)
        } else {
            let dir = self.parent(parent)?;
            openat(dir, name, flags | OFlags::CLOEXEC, mode)
        };
        created
            .map(File::from)
            .map_err(|e| BeneathError::Create(e.into()))
    }

    /// The handle of `parent`, resolved beneath the root unless it is the
    /// one kept.
    fn parent(&mut self, parent: &str) -> Result<impl AsFd + '_, BeneathError> {
        let kept = matches!(&self.parent, Some((path, _)) if path == parent);
        if !kept {
            self.parent = Some((parent.to_owned(), self.resolve(parent)?));
        }
        match &self.parent {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(BeneathError::Parent(io::ErrorKind::NotFound.into())),
        }
    }

    fn resolve(&self, parent: &str) -> Result<OwnedFd, BeneathError> {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut tries = 0;
        loop {
            match openat2(self.root, parent, flags, Mode::empty(), resolve) {
                Err(rustix::io::Errno::AGAIN) if tries < RETRIES => tries += 1,
                other => return other.map_err(|e| BeneathError::Parent(e.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_split() {
        assert_eq!(split("a"), Some(("", "a")));
        assert_eq!(split("usr/bin/ls"), Some(("usr/bin", "ls")));
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            "..",
            "a\0b",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_followed_or_replaced() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        std::os::unix::fs::symlink("../x", root.path().join("d/planted")).unwrap();
        let dir = File::open(root.path()).unwrap();
        let mut beneath = Beneath::new(&dir);
        beneath.create("d/new").unwrap();
        beneath.create("top").unwrap();
        assert!(matches!(
            beneath.create("link/escape"),
            Err(BeneathError::Parent(_))
        ));
        assert!(matches!(
            beneath.create("d/planted"),
            Err(BeneathError::Create(_))
        ));
        assert!(matches!(
            beneath.create("d/new"),
            Err(BeneathError::Create(_))
        ));
        assert!(matches!(
            beneath.create("d/../top2"),
            Err(BeneathError::NotPlain)
        ));
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(!root.path().join("x").exists());
    }
}
