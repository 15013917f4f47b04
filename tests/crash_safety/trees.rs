//! Trees: what a destination holds, compared whole.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::*;

/// What a path in a tree is (symlinks not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
    Other,
}

/// Every path under `root` (relative) with what it is: kind, mode,
/// contents, symlink target.
#[track_caller]
pub(super) fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut nodes = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("a path under the root")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.is_dir() {
                pending.push(path);
                Node::Dir(mode)
            } else if meta.is_file() {
                let bytes =
                    fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                Node::File(mode, bytes)
            } else if meta.is_symlink() {
                Node::Link(fs::read_link(&path).expect("read a symlink"))
            } else {
                Node::Other
            };
            nodes.insert(rel, node);
        }
    }
    nodes
}

/// Asserts the root filesystem at `dir` is `reference`, path for path.
#[track_caller]
pub(super) fn assert_same_rootfs(dir: &Path, reference: &BTreeMap<String, Node>) {
    let got = tree(dir);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "{}: not the whole root filesystem",
        dir.display()
    );
    for (path, node) in reference {
        assert_eq!(&got[path], node, "{}: {path} differs", dir.display());
    }
}

/// The regular files of an OCI layout tarball, checked complete and
/// consistent (our reader) and readable by skopeo.
#[track_caller]
pub(super) fn valid_oci_tar(path: &Path) -> LayoutFiles {
    let files = LayoutFiles::from_tar(path);
    files.verify();
    skopeo(&["inspect", "--raw", &oci_archive(path)]);
    files
}

/// [`valid_oci_tar`] for an OCI layout directory.
#[track_caller]
pub(super) fn valid_oci_dir(path: &Path) -> LayoutFiles {
    let files = LayoutFiles::from_dir(path);
    files.verify();
    skopeo(&["inspect", "--raw", &oci_dir(path)]);
    files
}

/// What `out/name` is: its tree for a directory (symlinks not followed),
/// else itself.
pub(super) fn tree_or_file(out: &Path, name: &str) -> BTreeMap<String, Node> {
    let path = out.join(name);
    let meta =
        fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let mut nodes = if meta.is_dir() {
        tree(&path)
    } else {
        BTreeMap::new()
    };
    let node = if meta.is_symlink() {
        Node::Link(fs::read_link(&path).expect("read a symlink"))
    } else if meta.is_file() {
        Node::File(meta.permissions().mode(), fs::read(&path).expect("read"))
    } else {
        Node::Dir(meta.permissions().mode())
    };
    nodes.insert(String::new(), node);
    nodes
}
