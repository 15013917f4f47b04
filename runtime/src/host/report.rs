//! `outport:exporter/host`: log lines and progress from a guest, forwarded to
//! the session's [`Reporter`](crate::report::Reporter) under the instance ID.

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
        let label = truncate(&label, 200);
        self.reporter
            .progress(&self.instance_id, label, current, total);
        Ok(())
    }
}

impl InstanceState {
    /// Forwards one guest log line, within the instance's log budget.
    pub fn emit_log(&mut self, level: LogLevel, message: &str) {
        if self.log_budget == 0 {
            return;
        }
        let line = truncate(message.trim_end(), MAX_LINE);
        let cost = line.len().max(1);
        if cost > self.log_budget {
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

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
