//! Paths: the repository, the sample image, temporary directories, and
//! the names skopeo gives OCI layouts.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root (the tests are compiled as part of `runtime/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The checked-in sample image (an OCI layout directory). Read it, never
/// write to it: copy it with [`copy_sample`] to change it.
pub fn sample_image() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/sample-image"
    ))
}

/// The script that makes the sample image.
pub fn sample_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/make-sample-image.py"
    ))
}

/// A fresh temporary directory (under the system's temp dir, never the repo).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("outport-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Creates `parent/name` (an empty directory) and returns it.
pub fn mkdir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A path as `&str`, for building `--output` specs and tool arguments.
pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", path.display()))
}

/// `oci-archive:PATH`, as skopeo names an OCI layout tarball.
pub fn oci_archive(path: &Path) -> String {
    format!("oci-archive:{}", path_str(path))
}

/// `oci:PATH`, as skopeo names an OCI layout directory.
pub fn oci_dir(path: &Path) -> String {
    format!("oci:{}", path_str(path))
}

/// `oci:PATH:REF`.
pub fn oci_dir_ref(path: &Path, reference: &str) -> String {
    format!("oci:{}:{reference}", path_str(path))
}
