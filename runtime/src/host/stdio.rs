//! What a guest says: `log` calls and its stdout and stderr, through one
//! sink per instance with one byte budget (the `log-bytes` limit), one rate
//! limit and one line cut. Every line is made one line
//! ([`crate::sandbox::text::one_line`]) before a [`Reporter`] sees it, so no guest
//! text reaches a terminal raw.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::text::{one_line, truncate};

/// Longest log line kept; longer lines are cut.
pub const MAX_LINE: usize = 4096;

/// Longest "last words" kept for a failure's message.
const LAST_WORDS: usize = 300;

/// Calls per second admitted after the burst.
pub const RATE: u32 = 100;
/// Calls admitted at once.
pub const BURST: u32 = 1000;

/// One instance's log sink, shared by its `log` calls and its stdio.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<Sink>>,
}

struct Sink {
    reporter: Arc<dyn Reporter>,
    id: String,
    budget: usize,
    rate: Throttle,
    /// A line of stdout (0) and stderr (1) not yet ended.
    partial: [Vec<u8>; 2],
    /// The last non-empty line of stdout or stderr (a panic message).
    last: Option<String>,
}

impl GuestLog {
    /// A sink for instance `id` with `budget` bytes of log lines.
    pub fn new(reporter: Arc<dyn Reporter>, id: &str, budget: usize) -> Self {
        GuestLog {
            inner: Arc::new(Mutex::new(Sink {
                reporter,
                id: id.to_string(),
                budget,
                rate: Throttle::default(),
                partial: [Vec::new(), Vec::new()],
                last: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One log line from the guest, within its budget and rate.
    pub fn line(&self, level: LogLevel, message: &str) {
        self.lock().emit(level, message);
    }

    /// The guest's stdout (`stream` 0) or stderr (1) as an output stream.
    pub fn stdio(&self, stream: usize) -> GuestStdio {
        GuestStdio {
            log: self.clone(),
            stream,
        }
    }

    /// Emits what stdout and stderr left without a newline, and returns
    /// the guest's last line there (cut, made one line), if any.
    pub fn finish(&self) -> Option<String> {
        let mut sink = self.lock();
        for stream in 0..2 {
            let rest = std::mem::take(&mut sink.partial[stream]);
            sink.stdio_line(&rest);
        }
        sink.last.take()
    }
}

impl Sink {
    fn emit(&mut self, level: LogLevel, message: &str) {
        if self.budget == 0 || !self.admit() {
            return;
        }
        let line = one_line(truncate(message.trim_end(), MAX_LINE));
        let cost = line.len().max(1);
        // A line that would use the budget up is dropped too, so the note
        // is always given (a budget at zero stays silent).
        if cost >= self.budget {
            self.budget = 0;
            self.reporter.log(
                &self.id,
                LogLevel::Warn,
                "log limit reached: further lines from this instance are dropped",
            );
            return;
        }
        self.budget -= cost;
        self.reporter.log(&self.id, level, &line);
    }

    fn admit(&mut self) -> bool {
        if self.rate.take() {
            return true;
        }
        if !self.rate.warned {
            self.rate.warned = true;
            let message = format!(
                "rate limit of {RATE} log lines per second (burst {BURST}) exceeded: further log lines are dropped while it lasts"
            );
            self.reporter.log(&self.id, LogLevel::Warn, &message);
        }
        false
    }

    /// Bytes written to stdout or stderr: each ended line is logged.
    fn write(&mut self, stream: usize, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[stream]);
            line.extend_from_slice(&bytes[..end]);
            self.stdio_line(&line);
            bytes = &bytes[end + 1..];
        }
        let partial = &mut self.partial[stream];
        // A line longer than the cut keeps only its start.
        let room = (MAX_LINE + 4).saturating_sub(partial.len());
        partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn stdio_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if !text.starts_with("note: run with `RUST_BACKTRACE") {
            self.last = Some(one_line(truncate(text, LAST_WORDS)).into_owned());
        }
        self.emit(LogLevel::Info, text);
    }
}

/// A guest's stdout or stderr: lines go to its [`GuestLog`].
#[derive(Clone)]
pub struct GuestStdio {
    log: GuestLog,
    stream: usize,
}

impl GuestStdio {
    fn write_bytes(&self, bytes: &[u8]) {
        self.log.lock().write(self.stream, bytes);
    }
}

impl IsTerminal for GuestStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestStdio {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestStdio {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStdio {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A token bucket of [`BURST`] tokens refilled at [`RATE`] per second.
#[derive(Debug)]
pub struct Throttle {
    tokens: f64,
    last: Instant,
    /// Whether the drop was reported.
    pub warned: bool,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            tokens: f64::from(BURST),
            last: Instant::now(),
            warned: false,
        }
    }
}

impl Throttle {
    /// Takes a token if one is there.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(RATE);
        self.tokens = (self.tokens + refill).min(f64::from(BURST));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Reporter for Lines {
        fn log(&self, id: &str, _: LogLevel, message: &str) {
            self.0.lock().unwrap().push(format!("[{id}] {message}"));
        }
        fn progress(&self, _: &str, _: &str, _: u64, _: u64) {}
    }

    #[test]
    fn stdio_obeys_the_log_budget_and_stays_one_line_per_line() {
        let lines = Arc::new(Lines::default());
        let log = GuestLog::new(lines.clone(), "a", 40);
        let out = log.stdio(0);
        out.write_bytes(b"hello\x1b]0;pwned\x07\n[b] error: forged\rsummary\n");
        out.write_bytes(&[b'x'; 100]);
        out.write_bytes(b"\nlast words");
        assert_eq!(log.finish().as_deref(), Some("last words"));
        let got = lines.0.lock().unwrap().clone();
        assert_eq!(got[0], "[a] hello\\u{1b}]0;pwned\\u{7}");
        assert!(got.iter().all(|l| l.starts_with("[a] ")), "{got:?}");
        assert!(got.iter().all(|l| !l.contains('\x1b') && !l.contains('\r')));
        assert!(
            got.iter().any(|l| l.contains("log limit reached")),
            "{got:?}"
        );
        assert!(!got.iter().any(|l| l.contains("xxxx")), "{got:?}");
    }
}
