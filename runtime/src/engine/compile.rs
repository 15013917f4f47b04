//! Compiling untrusted components in a child process: `outport __compile`
//! gets the component's bytes on stdin, lowers its own address-space limit
//! (`RLIMIT_AS`) before reading them, compiles with the engine's code
//! settings and writes the artifact to stdout, where the parent reads it
//! (and stores it in the compile cache, signed). The parent kills the
//! child once its deadline passes. A compiler bug or a component built to
//! make Cranelift explode then costs a bounded child, never the host.

use crate::error::CompileError;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::engine::code_config;

/// The hidden subcommand the parent runs.
pub const SUBCOMMAND: &str = "__compile";

/// How often the parent checks on the child.
const POLL: Duration = Duration::from_millis(10);

/// Time and memory a compilation may take.
#[derive(Clone, Debug)]
pub struct CompileLimits {
    /// Wall time before the child is killed.
    pub timeout: Duration,
    /// The child's address-space limit, in bytes.
    pub memory_bytes: u64,
}

impl From<&crate::Limits> for CompileLimits {
    fn from(limits: &crate::Limits) -> Self {
        CompileLimits {
            timeout: limits.compile_timeout,
            memory_bytes: limits.compile_memory_bytes,
        }
    }
}

/// An I/O error while doing `what`.
fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> CompileError {
    move |source| CompileError::Io { what, source }
}

/// One compilation in a child process.
pub struct Job<'a> {
    /// The `outport` binary.
    pub exe: &'a Path,
    /// Whether the engine meters fuel.
    pub fuel: bool,
    /// Its limits.
    pub limits: &'a CompileLimits,
}

impl Job<'_> {
    /// Compiles `bytes` in a child and returns the artifact. The error is
    /// one line: a limit named with its value, or why the component does
    /// not compile.
    pub fn run(&self, bytes: &[u8]) -> Result<Vec<u8>, CompileError> {
        let mut command = Command::new(self.exe);
        command
            .arg(SUBCOMMAND)
            .args(["--memory-bytes", &self.limits.memory_bytes.to_string()])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.fuel {
            command.arg("--fuel");
        }
        let mut child = command
            .spawn()
            .map_err(io("cannot start the compiler process"))?;
        let deadline = Instant::now() + self.limits.timeout;
        let (status, artifact, stderr) = std::thread::scope(|scope| {
            // Feeding stdin and draining stdout and stderr on threads: no
            // pipe can block the deadline.
            let mut stdin = child.stdin.take();
            scope.spawn(move || {
                if let Some(stdin) = stdin.as_mut() {
                    // A child that dies early closes the pipe; its exit
                    // status says why.
                    let _ = stdin.write_all(bytes);
                }
            });
            // The artifact cannot be larger than the child's address space.
            let mut stdout = child.stdout.take();
            let limit = self.limits.memory_bytes;
            let artifact = scope.spawn(move || {
                let mut artifact = Vec::new();
                match stdout.as_mut() {
                    Some(stdout) => stdout
                        .take(limit)
                        .read_to_end(&mut artifact)
                        .map(|_| artifact),
                    None => Ok(artifact),
                }
            });
            let mut stderr = child.stderr.take();
            let reader = scope.spawn(move || {
                let mut text = String::new();
                if let Some(stderr) = stderr.as_mut() {
                    let _ = stderr.take(64 << 10).read_to_string(&mut text);
                }
                text
            });
            let status = wait_until(&mut child, deadline);
            let artifact = artifact
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the reader panicked")));
            (status, artifact, reader.join().unwrap_or_default())
        });
        match status {
            Err(e) => Err(io("cannot wait for the compiler process")(e)),
            Ok(None) => Err(CompileError::Time(self.limits.timeout.as_secs())),
            Ok(Some(status)) if status.success() => {
                artifact.map_err(io("cannot read the compiled artifact"))
            }
            Ok(Some(status)) => Err(failure(status, &stderr, self.limits.memory_bytes)),
        }
    }
}

/// Waits for `child` until `deadline`; past it kills the child and
/// returns `None`.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// One line for a failed child: running out of its address space (an
/// allocation failure aborts it, or Cranelift reports it), else its error.
fn failure(status: ExitStatus, stderr: &str, memory_bytes: u64) -> CompileError {
    use std::os::unix::process::ExitStatusExt as _;
    let out_of_memory = [
        "memory allocation of",
        "Cannot allocate memory",
        "out of memory",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
        || status.signal() == Some(rustix::process::Signal::ABORT.as_raw());
    if out_of_memory {
        return CompileError::Memory(memory_bytes);
    }
    let line = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    CompileError::Component(match line {
        Some(line) => line.strip_prefix("error: ").unwrap_or(line).to_string(),
        None => format!("the compiler process failed ({status})"),
    })
}

/// The child's side (`outport __compile`): limits its own address space to
/// `memory_bytes`, reads the component from stdin, compiles it and writes
/// the artifact to stdout.
pub fn child(memory_bytes: u64, fuel: bool) -> Result<(), CompileError> {
    let limit = rustix::process::Rlimit {
        current: Some(memory_bytes),
        maximum: Some(memory_bytes),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit)
        .map_err(|e| io("cannot set the memory limit")(e.into()))?;
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(io("cannot read the component"))?;
    let engine = wasmtime::Engine::new(&code_config(fuel))
        .map_err(|e| CompileError::Component(format!("{e:#}")))?;
    let artifact = engine.precompile_component(&bytes).map_err(|e| {
        CompileError::Component(format!("cannot compile: {e:#}").replace('\n', " "))
    })?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&artifact)
        .and_then(|()| stdout.flush())
        .map_err(io("cannot write the artifact"))
}
