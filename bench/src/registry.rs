//! A throw-away `docker-registry` (Debian's `distribution`) on 127.0.0.1:
//! started with empty storage before each timed push, so every push uploads
//! every blob, and stopped after it. Its access log (one line per request,
//! with the bytes of each answer) goes to a file, [`Registry::access_log`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How to start a registry; one free loopback port for the whole run.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: PathBuf,
}

impl Registry {
    /// Picks a free port; the registry keeps its files under `dir/registry`.
    pub fn new(dir: &Path) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Ok(Registry {
            addr: format!("127.0.0.1:{port}"),
            dir: dir.join("registry"),
        })
    }

    /// Whether `docker-registry` is installed.
    pub fn available() -> bool {
        Command::new("docker-registry")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The running registry's access log (Apache's combined format).
    pub fn access_log(&self) -> PathBuf {
        self.dir.join("access.log")
    }

    /// Bytes of the answers to blob `GET`s so far, from the access log
    /// (Apache's combined format: `… "GET /v2/NAME/blobs/sha256:…
    /// HTTP/1.1" 200 BYTES …`).
    pub fn served_blob_bytes(&self) -> Result<u64> {
        let log = self.access_log();
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("reading the registry's access log {}", log.display()))?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (_, request) = line.split_once("\"GET /v2/")?;
                let (target, rest) = request.split_once('"')?;
                if !target.contains("/blobs/sha256:") {
                    return None;
                }
                let mut fields = rest.split_whitespace();
                let _status = fields.next()?;
                fields.next()?.parse::<u64>().ok()
            })
            .sum())
    }

    /// Starts a registry with empty storage and waits until it answers.
    pub fn start(&self) -> Result<Running> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)?;
        }
        std::fs::create_dir_all(self.dir.join("storage"))?;
        let config = self.dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
                self.dir.join("storage").display(),
                self.addr
            ),
        )?;
        let log = std::fs::File::create(self.access_log())?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start docker-registry")?;
        let running = Running(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers(&self.addr) {
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not answer on {} within 20 s",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(running)
    }
}

/// Whether `GET /v2/` gets an HTTP answer.
fn answers(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// A running registry, stopped when dropped.
#[derive(Debug)]
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Already gone is fine; the bench only needs it stopped.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
