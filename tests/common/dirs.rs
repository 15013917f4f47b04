//! Directories: listing, emptiness, copies (of the sample, too).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::layout_edit::Layout;
use super::paths::sample_image;
use super::{ANN_REF_NAME, MT_INDEX};

/// The names of a directory's entries, sorted.
#[track_caller]
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("read a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Asserts that `dir` does not exist or is empty: a failed export left
/// nothing behind (no output, no temporary file or directory).
#[track_caller]
pub fn assert_empty_or_absent(dir: &Path) {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("stat {}: {e}", dir.display()),
        Ok(meta) => {
            assert!(
                meta.is_dir(),
                "{} exists and is not a directory",
                dir.display()
            );
            let names = dir_names(dir);
            assert!(
                names.is_empty(),
                "{} should be empty, holds {names:?}",
                dir.display()
            );
        }
    }
}

/// Copies a directory tree of plain files and directories.
#[track_caller]
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("read a directory entry");
        let kind = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        } else {
            panic!("unexpected file type: {}", entry.path().display());
        }
    }
}

/// A writable copy of the sample image at `parent/name`.
#[track_caller]
pub fn copy_sample(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    copy_dir(&sample_image(), &dir);
    dir
}

/// A copy of the sample at `parent/name` whose `index.json` points straight
/// at the `arch` image manifest (a single-platform image), named `tag`.
#[track_caller]
pub fn single_platform_sample(parent: &Path, name: &str, arch: &str, tag: &str) -> PathBuf {
    let dir = copy_sample(parent, name);
    let layout = Layout::open(&dir);
    let mut desc = layout.files().manifest_descriptor(arch);
    desc["annotations"] = json!({ ANN_REF_NAME: tag });
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [desc],
    }));
    dir
}
