//! Snapshots of a root filesystem (a directory or a tar).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What a path of a root filesystem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Dir,
    File(Vec<u8>),
    /// The symlink's target as a path from the root (`..` stops at the
    /// root), so `/etc/x` and `../etc/x` at `a/l` compare equal.
    Symlink(String),
    Other,
}

/// A root filesystem: path → item, the groups of hard-linked paths, and
/// each path's mode and mtime.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(super) items: BTreeMap<String, Item>,
    pub(super) links: BTreeSet<Vec<String>>,
    pub(super) modes: BTreeMap<String, u32>,
    pub(super) mtimes: BTreeMap<String, u64>,
}

/// Where symlink `target` at `link` points, from the root.
fn from_root(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

impl Snapshot {
    #[track_caller]
    pub(crate) fn of_dir(root: &Path) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        walk(root, root, &mut snap, &mut inodes);
        snap.links = inodes
            .into_values()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        snap
    }

    /// The tree under `prefix` (`linux_amd64/`, or `""`) of a tar.
    #[track_caller]
    pub(super) fn of_tar(bytes: &[u8], prefix: &str) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().expect("read the tar") {
            let mut entry = entry.expect("a tar entry");
            let path = entry.path().expect("a path").to_str().unwrap().to_owned();
            let path = path.trim_end_matches('/');
            let Some(path) = path.strip_prefix(prefix) else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            let path = path.to_owned();
            let header = entry.header().clone();
            let item = match header.entry_type() {
                tar::EntryType::Directory => Item::Dir,
                tar::EntryType::Regular => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).unwrap();
                    Item::File(data)
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name().unwrap().unwrap();
                    Item::Symlink(from_root(&path, target.to_str().unwrap()))
                }
                tar::EntryType::Link => {
                    let target = entry.link_name().unwrap().unwrap();
                    let target = target.to_str().unwrap();
                    let target = target.strip_prefix(prefix).expect("a link inside the tree");
                    groups
                        .entry(target.to_owned())
                        .or_insert_with(|| vec![target.to_owned()])
                        .push(path.clone());
                    snap.items[target].clone()
                }
                _ => Item::Other,
            };
            snap.modes.insert(path.clone(), header.mode().unwrap());
            snap.mtimes.insert(path.clone(), header.mtime().unwrap());
            assert!(
                snap.items.insert(path.clone(), item).is_none(),
                "{path} is twice in the tar"
            );
        }
        snap.links = groups
            .into_values()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        snap
    }

    fn paths(&self) -> Vec<&str> {
        self.items.keys().map(String::as_str).collect()
    }
}

fn walk(root: &Path, dir: &Path, snap: &mut Snapshot, inodes: &mut BTreeMap<u64, Vec<String>>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        let item = if kind.is_dir() {
            walk(root, &path, snap, inodes);
            Item::Dir
        } else if kind.is_file() {
            inodes.entry(meta.ino()).or_default().push(rel.clone());
            Item::File(fs::read(&path).unwrap())
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            Item::Symlink(from_root(&rel, target.to_str().unwrap()))
        } else {
            Item::Other
        };
        snap.modes
            .insert(rel.clone(), meta.permissions().mode() & 0o7777);
        snap.mtimes.insert(rel.clone(), meta.mtime() as u64);
        snap.items.insert(rel, item);
    }
}

/// Asserts two snapshots hold the same paths, kinds, contents, symlink
/// targets and hard links; and the same mtimes for files and symlinks.
#[track_caller]
pub(crate) fn assert_same_tree(ours: &Snapshot, reference: &Snapshot, what: &str) {
    assert_eq!(ours.paths(), reference.paths(), "{what}: paths differ");
    for (path, item) in &reference.items {
        assert_eq!(&ours.items[path], item, "{what}: {path} differs");
        if !matches!(item, Item::Dir) {
            assert_eq!(
                ours.mtimes[path], reference.mtimes[path],
                "{what}: mtime of {path}"
            );
        }
    }
    assert_eq!(ours.links, reference.links, "{what}: hard links differ");
}
