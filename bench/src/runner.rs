//! Running and timing commands: wall time and peak resident memory of one
//! child (`wait4`'s rusage), and the median of several runs.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A command to time.
#[derive(Clone, Debug)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, OsString)>,
}

impl Cmd {
    /// `program` with `args`.
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut argv = vec![program.into()];
        argv.extend(args.into_iter().map(Into::into));
        Cmd {
            argv,
            env: Vec::new(),
        }
    }

    /// The same command with `key=value` in its environment.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One finished run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Peak resident set size of the child, in bytes.
    pub max_rss: u64,
    /// CPU time of the child and its children (user + system), in seconds:
    /// against the wall time, how many cores it kept busy.
    pub cpu_secs: f64,
    /// Whether it exited with status 0.
    pub success: bool,
    /// What it wrote to standard error.
    pub stderr: String,
}

/// Runs `cmd` once (stdout discarded, stderr captured).
pub fn run(cmd: &Cmd) -> Result<Run> {
    let mut command = Command::new(&cmd.argv[0]);
    command
        .args(&cmd.argv[1..])
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", cmd.display()))?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            // A failure to read only loses the message, not the measurement.
            let _ = stderr.read_to_string(&mut text);
        }
        text
    });
    let (success, max_rss, cpu_secs) =
        wait_with_rusage(child.id()).with_context(|| format!("waiting for {}", cmd.display()))?;
    let elapsed = started.elapsed();
    let stderr = reader.join().unwrap_or_default();
    Ok(Run {
        elapsed,
        max_rss,
        cpu_secs,
        success,
        stderr,
    })
}

/// Runs `cmd` once and fails, showing its stderr, unless it succeeds.
pub fn run_ok(cmd: &Cmd) -> Result<Run> {
    let run = run(cmd)?;
    if !run.success {
        bail!("{} failed:\n{}", cmd.display(), run.stderr.trim_end());
    }
    Ok(run)
}

/// Reaps child `pid`; returns whether it exited with 0, its peak RSS in
/// bytes (`ru_maxrss`, which Linux gives in KiB) and its CPU seconds (user
/// and system, its waited-for children included).
fn wait_with_rusage(pid: u32) -> io::Result<(bool, u64, f64)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes for the whole
        // call; `pid` is our own child, which nothing else waits for.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    Ok((success, kib * 1024, cpu))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
