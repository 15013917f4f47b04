//! A tmpfs mounted for a test (a full filesystem).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs mounted for a test; unmounted when dropped (a panic included).
pub(crate) struct Tmpfs {
    pub(crate) path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` bytes at `path` (created). `None` when this
    /// process may not mount one (not root, or `EPERM` in a container).
    pub(crate) fn mount(path: &Path, size: u64) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .expect("run mount");
        if output.status.success() {
            return Some(Tmpfs {
                path: path.to_path_buf(),
            });
        }
        let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
        if stderr.contains("permission denied")
            || stderr.contains("not permitted")
            || stderr.contains("must be superuser")
        {
            return None;
        }
        panic!("mount a tmpfs at {}: {stderr}", path.display());
    }

    /// Bytes in use (tmpfs counts whole pages).
    pub(crate) fn used(&self) -> u64 {
        let stat = rustix::fs::statvfs(&self.path).expect("statvfs the tmpfs");
        (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut command = Command::new("umount");
            if lazy {
                command.arg("-l");
            }
            command
                .arg(&self.path)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
}
