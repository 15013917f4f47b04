//! How a session tells the person running it what happens: log lines and
//! progress per instance. The CLI renders them as progress bars on a
//! terminal and as plain lines otherwise; an embedder supplies its own.

/// Severity of a reported line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something worth attention.
    Warn,
    /// A failure.
    Error,
}

/// Receives what instances report. Implementations must be cheap and must
/// not block: they are called from the instances' tasks.
pub trait Reporter: Send + Sync {
    /// A log line from instance `id` (from the guest or the host about it).
    fn log(&self, id: &str, level: LogLevel, message: &str);
    /// Progress of task `label` of instance `id`: `current` of `total`
    /// (0 = unknown).
    fn progress(&self, id: &str, label: &str, current: u64, total: u64);
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {
    fn log(&self, _: &str, _: LogLevel, _: &str) {}
    fn progress(&self, _: &str, _: &str, _: u64, _: u64) {}
}
