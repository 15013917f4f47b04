//! The pulled-components cache: one file per component layer, by digest.

use std::path::{Path, PathBuf};

/// Where the cache in `dir` keeps the component of layer `digest` (a
/// checked `sha256:HEX`).
pub(super) fn cache_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    dir.join("sha256").join(format!("{hex}.wasm"))
}

/// The pulled-components cache under a compile cache directory.
pub fn cache_dir(compile_cache: &Path) -> PathBuf {
    compile_cache.join("pulled")
}
