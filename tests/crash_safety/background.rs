//! A run in the background, and waiting for it to reach a state.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::{STALE, WAIT, stagings};

/// An `outport` run in the background (stdout dropped, stderr to a file);
/// killed with SIGKILL and reaped when dropped, so a failing test leaves no
/// process behind.
pub(crate) struct Running {
    child: Child,
    args: Vec<String>,
    stderr: PathBuf,
}

impl Running {
    /// Starts `outport ARGS` with the compile cache in `cache`, as
    /// [`outport_with_cache`] runs it.
    pub(crate) fn start(args: Vec<String>, cache: &Path, stderr: PathBuf) -> Running {
        Running::start_with_env(args, cache, stderr, &[])
    }

    /// As [`Running::start`], with the environment variables `env` too.
    pub(crate) fn start_with_env(
        args: Vec<String>,
        cache: &Path,
        stderr: PathBuf,
        env: &[(&str, &str)],
    ) -> Running {
        let log = fs::File::create(&stderr)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_outport"))
            .args(&args)
            .arg("--cache-dir")
            .arg(cache)
            .env("OUTPORT_CACHE_DIR", cache)
            .env("OUTPORT_PLUGIN_DIR", "")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the outport binary");
        Running {
            child,
            args,
            stderr,
        }
    }

    pub(super) fn describe(&self) -> String {
        let stderr = fs::read_to_string(&self.stderr).unwrap_or_default();
        format!(
            "command: outport {:?}\n--- stderr ---\n{stderr}\n---",
            self.args
        )
    }

    /// Panics when the run has ended (it should still be waiting).
    #[track_caller]
    pub(super) fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait for outport") {
            panic!("outport ended early ({status})\n{}", self.describe());
        }
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `ready` until it holds, for at most [`WAIT`]; every run in `alive`
/// must stay alive meanwhile.
#[track_caller]
pub(crate) fn wait_until(what: &str, alive: &mut [&mut Running], mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        for run in alive.iter_mut() {
            run.assert_alive();
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for {what} in vain\n{}",
            alive
                .iter()
                .map(|run| run.describe())
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the one staging directory for destination `name` in `dir`
/// holds `file` with `partial output` in it: the misbehave instance wrote
/// it and is (about to be) waiting.
pub(super) fn staged_partial(dir: &Path, name: &str, file: &str) -> bool {
    match stagings(dir, name).as_slice() {
        [one] => fs::read(one.join(file)).is_ok_and(|bytes| bytes == b"partial output"),
        _ => false,
    }
}

/// Sleeps until every path in `dirs` was last changed more than [`STALE`]
/// ago.
pub(super) fn wait_until_stale(dirs: &[PathBuf]) {
    for dir in dirs {
        let modified = fs::symlink_metadata(dir)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("stat {}: {e}", dir.display()));
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        if let Some(left) = STALE.checked_sub(age) {
            std::thread::sleep(left);
        }
    }
}
