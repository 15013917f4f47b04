//! Log lines and progress, shown to the person running `outport` prefixed by
//! the instance ID (the `host` interface of the contract).

use crate::bindings::outport::exporter::host::{self, Level};

/// A debug line (shown with `OUTPORT_LOG=debug` or `--progress plain`).
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

/// An informational line: what the exporter is doing or has done.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// A warning: something that did not stop the export.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// An error line. The error returned from `export` is shown anyway.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Progress of the task `label`: `current` of `total` units (0: unknown).
pub fn progress(label: &str, current: u64, total: u64) {
    host::progress(label, current, total);
}

/// A counter that reports progress under one label as items are done.
#[derive(Debug)]
pub struct Progress {
    label: String,
    done: u64,
    total: u64,
}

impl Progress {
    /// Starts the task `label` with `total` items and reports 0 done.
    pub fn start(label: &str, total: u64) -> Self {
        progress(label, 0, total);
        Progress {
            label: label.to_owned(),
            done: 0,
            total,
        }
    }

    /// Reports one more item done.
    pub fn step(&mut self) {
        self.done += 1;
        progress(&self.label, self.done, self.total);
    }
}
