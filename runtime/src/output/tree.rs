//! The host's hands on a tree a guest wrote (an instance's staging
//! directory): sizing it, checking what it holds, and removing it.
//!
//! Every access goes through a `cap-std` [`Dir`] of the tree, one name at a
//! time, and never follows a symlink: a guest may plant `x -> ../../etc`
//! inside its tree (wasmtime-wasi lets it), and nothing here opens, reads,
//! sizes or removes anything the link names. Walks are iterative, so a tree
//! of any depth cannot overflow the host's stack; checks are bounded by a
//! deadline and a depth, removal by neither (it must finish).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, Permissions, ReadDir};

/// Deepest directory nesting a checked tree may have. Real root
/// filesystems stay far below it; the walk holds one descriptor a level.
pub const MAX_DEPTH: usize = 256;

/// Levels removal descends before moving deeper directories up to the
/// root of the tree to remove them from there (bounding its descriptors).
const REMOVE_DEPTH: usize = 32;

/// Entries between two looks at the deadline.
const DEADLINE_EVERY: u64 = 256;

/// Whether a tree may hold symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Symlinks are part of the output (a root filesystem); they are moved
    /// with the tree, never followed.
    Keep,
    /// The output holds only regular files and directories (an OCI layout,
    /// a cache): a symlink is refused.
    Refuse,
}

/// What a checked tree may hold, and until when the check may run.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Symlinks kept or refused.
    pub links: Links,
    /// Most bytes (regular files' sizes, sparse ones counted whole).
    pub max_bytes: u64,
    /// When the check must give up.
    pub deadline: Instant,
}

/// Why a tree was refused.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// It holds more bytes than allowed.
    #[error("output limit of {0} bytes exceeded")]
    TooLarge(u64),
    /// It nests directories deeper than [`MAX_DEPTH`].
    #[error("the output nests directories deeper than {MAX_DEPTH} levels (at {0})")]
    TooDeep(String),
    /// It holds an entry its kind of output may not.
    #[error("the output holds {what} at {path}, which this kind of output may not hold")]
    Refused {
        /// What was found ("a symlink", "a special file").
        what: &'static str,
        /// Where, relative to the tree's root.
        path: String,
    },
    /// The deadline passed.
    #[error("the deadline passed while checking the output")]
    Deadline,
    /// Reading the tree failed.
    #[error("cannot read the output at {path}: {source}")]
    Io {
        /// Where, relative to the tree's root.
        path: String,
        /// The error.
        source: io::Error,
    },
}

/// Sizes the tree under `root` and checks it against `rules`; returns the
/// total bytes of its regular files (and symlinks' targets' lengths).
pub fn check(root: &Dir, rules: &Rules) -> Result<u64, TreeError> {
    let io = |path: &Path, source| TreeError::Io {
        path: shown(path),
        source,
    };
    let mut total: u64 = 0;
    let mut seen: u64 = 0;
    // One frame per directory level: its handle, its entries, its path.
    let first = root.try_clone().map_err(|e| io(Path::new("."), e))?;
    let entries = first.entries().map_err(|e| io(Path::new("."), e))?;
    let mut stack: Vec<(Dir, ReadDir, PathBuf)> = vec![(first, entries, PathBuf::new())];
    while let Some((dir, entries, path)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let entry = entry.map_err(|e| io(path, e))?;
        let rel = path.join(entry.file_name());
        seen += 1;
        if seen.is_multiple_of(DEADLINE_EVERY) && Instant::now() >= rules.deadline {
            return Err(TreeError::Deadline);
        }
        let kind = entry.file_type().map_err(|e| io(&rel, e))?;
        let len = if kind.is_dir() {
            let child = dir
                .open_dir_nofollow(entry.file_name())
                .map_err(|e| io(&rel, e))?;
            if stack.len() >= MAX_DEPTH {
                return Err(TreeError::TooDeep(shown(&rel)));
            }
            let entries = child.entries().map_err(|e| io(&rel, e))?;
            stack.push((child, entries, rel));
            continue;
        } else if kind.is_file() {
            entry.metadata().map_err(|e| io(&rel, e))?.len()
        } else if kind.is_symlink() {
            if rules.links == Links::Refuse {
                return Err(TreeError::Refused {
                    what: "a symlink",
                    path: shown(&rel),
                });
            }
            entry.metadata().map_err(|e| io(&rel, e))?.len()
        } else {
            return Err(TreeError::Refused {
                what: "a special file",
                path: shown(&rel),
            });
        };
        total = total.saturating_add(len);
        if total > rules.max_bytes {
            return Err(TreeError::TooLarge(rules.max_bytes));
        }
    }
    Ok(total)
}

/// A relative path for a message, control characters escaped.
fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    let text = if text.is_empty() { "." } else { &text };
    crate::sandbox::text::one_line(text).into_owned()
}

/// What removing a tree left behind.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Entries that could not be removed.
    pub count: u64,
    /// The first error.
    pub first: Option<String>,
}

impl Leftovers {
    fn note(&mut self, what: &OsStr, e: &io::Error) {
        self.count += 1;
        if self.first.is_none() {
            let name = crate::sandbox::text::one_line(&what.to_string_lossy()).into_owned();
            self.first = Some(format!("{name}: {e}"));
        }
    }

    /// True when everything was removed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} entries could not be removed", self.count)?;
        if let Some(first) = &self.first {
            write!(f, " (first: {first})")?;
        }
        Ok(())
    }
}

/// Removes the directory `name` of `parent` and everything in it, without
/// following a symlink, at any depth, fixing modes a guest set (a
/// directory of mode 0) on the way. What cannot be removed is reported,
/// never a reason to stop.
pub fn remove(parent: &Dir, name: &OsStr) -> Leftovers {
    let mut left = Leftovers::default();
    match parent.symlink_metadata(name) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            if let Err(e) = parent.remove_file_or_symlink(name) {
                left.note(name, &e);
            }
            return left;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return left,
        Err(e) => {
            left.note(name, &e);
            return left;
        }
    }
    let root = match open_fixing(parent, name) {
        Ok(root) => root,
        Err(e) => {
            left.note(name, &e);
            return left;
        }
    };
    // Directories moved up to the root, to be emptied from there.
    let mut moved: Vec<OsString> = Vec::new();
    let mut counter: u64 = 0;
    empty(&root, &root, 0, &mut moved, &mut counter, &mut left);
    while let Some(deep) = moved.pop() {
        match open_fixing(&root, &deep) {
            Ok(dir) => empty(&root, &dir, 0, &mut moved, &mut counter, &mut left),
            Err(e) => left.note(&deep, &e),
        }
        if let Err(e) = root.remove_dir(&deep) {
            left.note(&deep, &e);
        }
    }
    drop(root);
    if let Err(e) = parent.remove_dir(name) {
        left.note(name, &e);
    }
    left
}

/// Opens directory `name` of `parent`, first giving it mode 0700 so that a
/// mode a guest set cannot keep its owner out.
fn open_fixing(parent: &Dir, name: &OsStr) -> io::Result<Dir> {
    // The entry was seen to be a directory (not a symlink) by the caller,
    // and the guest that made it is gone.
    let _ = parent.set_permissions(
        name,
        Permissions::from_std(std::fs::Permissions::from_mode(0o700)),
    );
    parent.open_dir_nofollow(name)
}

/// Removes everything in `dir` (at `depth` below `root`); directories at
/// [`REMOVE_DEPTH`] are renamed into `root` and listed in `moved`.
fn empty(
    root: &Dir,
    dir: &Dir,
    depth: usize,
    moved: &mut Vec<OsString>,
    counter: &mut u64,
    left: &mut Leftovers,
) {
    // The names first, then the removals: entries renamed into `root`
    // while it is listed must not be listed with it.
    let names: Vec<(OsString, bool)> = match dir.entries() {
        Ok(entries) => entries
            .flatten()
            .map(|e| {
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                (e.file_name(), is_dir)
            })
            .collect(),
        Err(e) => {
            left.note(OsStr::new("."), &e);
            return;
        }
    };
    for (name, is_dir) in names {
        if !is_dir {
            if let Err(e) = dir.remove_file_or_symlink(&name) {
                left.note(&name, &e);
            }
            continue;
        }
        if depth + 1 >= REMOVE_DEPTH {
            *counter += 1;
            let up = OsString::from(format!(".outport-deep-{counter}"));
            match dir.rename(&name, root, &up) {
                Ok(()) => moved.push(up),
                Err(e) => left.note(&name, &e),
            }
            continue;
        }
        match open_fixing(dir, &name) {
            Ok(child) => empty(root, &child, depth + 1, moved, counter, left),
            Err(e) => left.note(&name, &e),
        }
        if let Err(e) = dir.remove_dir(&name) {
            left.note(&name, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::time::Duration;

    fn rules(links: Links) -> Rules {
        Rules {
            links,
            max_bytes: 1 << 20,
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn check_never_follows_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a")).unwrap();
        std::fs::write(tree.join("a/f"), b"12345").unwrap();
        std::os::unix::fs::symlink("/dev/zero", tree.join("zero")).unwrap();
        std::os::unix::fs::symlink("/", tree.join("a/root")).unwrap();
        let dir = Dir::open_ambient_dir(&tree, ambient_authority()).unwrap();
        let size = check(&dir, &rules(Links::Keep)).unwrap();
        assert_eq!(size, 5 + "/dev/zero".len() as u64 + 1);
        let err = check(&dir, &rules(Links::Refuse)).unwrap_err();
        assert!(
            matches!(
                err,
                TreeError::Refused {
                    what: "a symlink",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn check_counts_sparse_files_whole_and_stops_at_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(tmp.path().join("sparse")).unwrap();
        f.set_len(2 << 20).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let err = check(&dir, &rules(Links::Keep)).unwrap_err();
        assert!(matches!(err, TreeError::TooLarge(_)), "{err}");
    }

    #[test]
    fn deep_trees_are_refused_by_check_and_removed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("deep");
        std::fs::create_dir(&top).unwrap();
        let mut dir = Dir::open_ambient_dir(&top, ambient_authority()).unwrap();
        // Far deeper than a path can name, and than a recursive removal on
        // a small stack survives.
        for _ in 0..5000 {
            dir.create_dir("d").unwrap();
            dir.write("f", b"x").unwrap();
            dir = dir.open_dir("d").unwrap();
        }
        std::os::unix::fs::symlink("/", tmp.path().join("deep/d/escape")).unwrap();
        drop(dir);
        let root = Dir::open_ambient_dir(&top, ambient_authority()).unwrap();
        let err = check(&root, &rules(Links::Keep)).unwrap_err();
        assert!(matches!(err, TreeError::TooDeep(_)), "{err}");
        drop(root);
        let parent = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        // On a small stack, as on a worker thread.
        let left = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || remove(&parent, OsStr::new("deep")))
            .unwrap()
            .join()
            .unwrap();
        assert!(left.is_empty(), "{left}");
        assert!(!top.exists());
    }

    #[test]
    fn remove_fixes_modes_and_leaves_symlink_targets_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let sentinel = tmp.path().join("sentinel");
        std::fs::create_dir(&sentinel).unwrap();
        std::fs::write(sentinel.join("keep"), b"keep").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("locked/inner")).unwrap();
        std::fs::write(tree.join("locked/inner/f"), b"x").unwrap();
        std::os::unix::fs::symlink("../sentinel", tree.join("link")).unwrap();
        std::os::unix::fs::symlink("../../sentinel", tree.join("locked/link")).unwrap();
        std::fs::set_permissions(
            tree.join("locked/inner"),
            std::fs::Permissions::from_mode(0o0),
        )
        .unwrap();
        std::fs::set_permissions(tree.join("locked"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        let parent = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let left = remove(&parent, OsStr::new("tree"));
        assert!(left.is_empty(), "{left}");
        assert!(!tree.exists());
        assert_eq!(std::fs::read(sentinel.join("keep")).unwrap(), b"keep");
    }
}
