//! Per-instance resource limits and their enforcement in the store.

use std::time::Duration;

use crate::bindings::types::Error;

/// What one instance may use. [`Limits::default`] is the safe default used
/// when no policy says otherwise.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Most elements in one table.
    pub table_elements: usize,
    /// Most core instances a component may create.
    pub instances: usize,
    /// Wall-clock time an instance may run (validate + export).
    pub timeout: Duration,
    /// Bytes the host writes for the instance through the fast path.
    pub output_bytes: u64,
    /// Bytes of log lines the instance may emit.
    pub log_bytes: usize,
    /// Most entries in the instance's resource table (handles it holds).
    pub resources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            table_elements: 20_000,
            instances: 32,
            timeout: Duration::from_secs(3600),
            output_bytes: 64 << 30,
            log_bytes: 1 << 20,
            resources: 10_000,
        }
    }
}

/// Counts bytes the host writes for an instance against its output limit.
#[derive(Debug)]
pub struct OutputQuota {
    limit: u64,
    used: u64,
}

impl OutputQuota {
    /// A quota of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        OutputQuota { limit, used: 0 }
    }

    /// Reserves `bytes`, or fails with a `limit` error naming the limit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), Error> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => Err(Error::Limit(format!(
                "output limit of {} bytes reached",
                self.limit
            ))),
        }
    }
}
