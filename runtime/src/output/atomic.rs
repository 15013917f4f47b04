//! Writing a small file atomically: a temporary file in the same directory,
//! then a rename, so readers never see a partial file.

use std::io::{self, Write as _};
use std::path::Path;

/// Writes `contents` to `path` atomically, creating missing parent
/// directories; the file gets mode 0644 (less the umask).
pub fn write_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".outport-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
