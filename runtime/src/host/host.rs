//! `outport:exporter/host`: log lines and progress from a guest, forwarded to
//! the session's [`Reporter`](crate::run::reporter::Reporter) under the instance ID.
//!
//! Both are rate-limited per instance (a token bucket: a burst, then a
//! steady rate), so a guest calling `log` or `progress` in a tight loop
//! costs the host a counter update per call, not a line on the terminal:
//! past the rate its calls are dropped, with one warning saying so. Log
//! lines share one budget with the guest's stdout and stderr (see
//! [`super::stdio`]); labels, like lines, are made one line.

use std::sync::Arc;

use crate::host::bindings::host::{Host, Level};
use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::text::{one_line, truncate};

use super::stdio::{BURST, GuestLog, RATE, Throttle};

/// Longest progress label kept.
const MAX_LABEL: usize = 200;

/// What the `host` interface works on for one instance: where its lines
/// and progress go, under its ID.
pub struct ReportCtx {
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) instance_id: String,
    /// Its log lines (shared with its stdio).
    pub(crate) log: GuestLog,
    progress_rate: Throttle,
}

impl ReportCtx {
    /// The context of instance `instance_id`, reporting to `reporter`, its
    /// lines going to `log`.
    pub fn new(reporter: Arc<dyn Reporter>, instance_id: String, log: GuestLog) -> Self {
        ReportCtx {
            reporter,
            instance_id,
            log,
            progress_rate: Throttle::default(),
        }
    }
}

impl crate::host::bindings::types::Host for ReportCtx {
    fn convert_error(
        &mut self,
        err: crate::host::bindings::HostError,
    ) -> wasmtime::Result<crate::host::bindings::types::Error> {
        err.into_guest()
    }
}

impl Host for ReportCtx {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.line(level, &message);
        Ok(())
    }

    async fn progress(&mut self, label: String, current: u64, total: u64) -> wasmtime::Result<()> {
        if !self.progress_rate.take() {
            if !self.progress_rate.warned {
                self.progress_rate.warned = true;
                let message = format!(
                    "rate limit of {RATE} progress reports per second (burst {BURST}) exceeded: further progress reports are dropped while it lasts"
                );
                self.reporter
                    .log(&self.instance_id, LogLevel::Warn, &message);
            }
            return Ok(());
        }
        let label = one_line(truncate(&label, MAX_LABEL));
        self.reporter
            .progress(&self.instance_id, &label, current, total);
        Ok(())
    }
}
