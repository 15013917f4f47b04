//! `outport:exporter/host`: log lines and progress from a guest, forwarded to
//! the session's [`Reporter`](crate::report::Reporter) under the instance ID.
//!
//! Both are rate-limited per instance (a token bucket: a burst, then a
//! steady rate), so a guest calling `log` or `progress` in a tight loop
//! costs the host a counter update per call, not a line on the terminal:
//! past the rate its calls are dropped, with one warning saying so.

use std::time::Instant;

use crate::bindings::host::{Host, Level};
use crate::report::LogLevel;
use crate::state::InstanceState;

/// Longest log line kept; longer lines are cut.
const MAX_LINE: usize = 4096;

impl Host for InstanceState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.emit_log(level, &message);
        Ok(())
    }

    async fn progress(&mut self, label: String, current: u64, total: u64) -> wasmtime::Result<()> {
        if !self.admit(Stream::Progress) {
            return Ok(());
        }
        let label = truncate(&label, 200);
        self.reporter
            .progress(&self.instance_id, label, current, total);
        Ok(())
    }
}

impl InstanceState {
    /// Forwards one guest log line, within the instance's log budget.
    pub fn emit_log(&mut self, level: LogLevel, message: &str) {
        if self.log_budget == 0 || !self.admit(Stream::Log) {
            return;
        }
        let line = truncate(message.trim_end(), MAX_LINE);
        let cost = line.len().max(1);
        // A line that would use the budget up is dropped too, so the note
        // is always given (a budget at zero stays silent).
        if cost >= self.log_budget {
            self.log_budget = 0;
            self.reporter.log(
                &self.instance_id,
                LogLevel::Warn,
                "log limit reached: further lines from this instance are dropped",
            );
            return;
        }
        self.log_budget -= cost;
        self.reporter.log(&self.instance_id, level, line);
    }
}

/// The two rate-limited streams of an instance.
#[derive(Clone, Copy)]
enum Stream {
    Log,
    Progress,
}

impl InstanceState {
    /// Whether one more call on `stream` passes its rate limit; the first
    /// dropped call is reported once.
    fn admit(&mut self, stream: Stream) -> bool {
        let (throttle, what) = match stream {
            Stream::Log => (&mut self.log_rate, "log lines"),
            Stream::Progress => (&mut self.progress_rate, "progress reports"),
        };
        if throttle.take() {
            return true;
        }
        if !throttle.warned {
            throttle.warned = true;
            let message = format!(
                "rate limit of {RATE} {what} per second (burst {BURST}) exceeded: further {what} are dropped while it lasts"
            );
            self.reporter
                .log(&self.instance_id, LogLevel::Warn, &message);
        }
        false
    }
}

/// Calls per second admitted after the burst.
const RATE: u32 = 100;
/// Calls admitted at once.
const BURST: u32 = 1000;

/// A token bucket of [`BURST`] tokens refilled at [`RATE`] per second.
#[derive(Debug)]
pub struct Throttle {
    tokens: f64,
    last: Instant,
    warned: bool,
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
    fn take(&mut self) -> bool {
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

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
