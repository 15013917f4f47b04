//! Per-instance resource limits and their enforcement in the store.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Largest linear memory the engine's instance slots hold, in bytes; a
/// policy asking for more is refused when it is read.
pub const ENGINE_MAX_MEMORY_BYTES: usize = 1 << 30;

/// Most elements one table of the engine's instance slots holds.
pub const ENGINE_MAX_TABLE_ELEMENTS: usize = 20_000;

/// Most core instances one component instance may create in the engine.
pub const ENGINE_MAX_INSTANCES: usize = 16;

/// Longest time limit (wall time, compile time, HTTP waits) a policy may
/// set: ten years, far beyond any use and far from overflowing a clock.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

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
    /// The run's open-file share, when it lowered `resources` (set by the
    /// session, never by a policy): a failure then names the share.
    pub descriptors: Option<crate::sandbox::descriptors::DescriptorShare>,
    /// Total bytes of the blobs an instance creates with `put-blob` (held
    /// in host memory until the instance ends).
    pub put_blob_bytes: u64,
    /// Temporary disk the host uses for the instance: each layer
    /// conversion (`convert-layers`) may decompress and write at most this
    /// many bytes, and the converted layers it is handed total at most this.
    pub scratch_bytes: u64,
    /// Fuel (roughly, wasm instructions) an instance may burn; `None`
    /// (the default) runs without fuel metering, bounded by `timeout`.
    pub fuel: Option<u64>,
    /// Wall-clock time compiling a third-party component may take.
    pub compile_timeout: Duration,
    /// Address space of the process compiling a third-party component.
    pub compile_memory_bytes: u64,
    /// What kind of destination the instance may write (from the policy).
    pub destination: DestinationRule,
    /// Longest wait for an HTTP connection (and TLS handshake).
    pub http_connect_timeout: Duration,
    /// Longest wait, once an HTTP request is sent (its body included), for
    /// the response's first byte.
    pub http_first_byte_timeout: Duration,
    /// Longest pause between two parts of an HTTP response body.
    pub http_between_bytes_timeout: Duration,
}

/// The kind of destination a policy lets a component write.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationRule {
    /// A file, a directory, or the docker daemon.
    #[default]
    Any,
    /// Only a directory.
    Directory,
    /// Only a single file, at a path or on standard output: not loaded into
    /// the docker daemon.
    File,
    /// Only the docker daemon (`load`): a file output loaded into it, and
    /// no `dest=`.
    Daemon,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            table_elements: ENGINE_MAX_TABLE_ELEMENTS,
            instances: ENGINE_MAX_INSTANCES,
            timeout: Duration::from_secs(3600),
            output_bytes: 64 << 30,
            log_bytes: 1 << 20,
            resources: 10_000,
            descriptors: None,
            put_blob_bytes: 64 << 20,
            scratch_bytes: 64 << 30,
            fuel: None,
            compile_timeout: Duration::from_secs(60),
            compile_memory_bytes: 4 << 30,
            destination: DestinationRule::Any,
            http_connect_timeout: Duration::from_secs(30),
            http_first_byte_timeout: Duration::from_secs(600),
            http_between_bytes_timeout: Duration::from_secs(60),
        }
    }
}

/// A limit an instance reached in a host call: its name, its value and one
/// line naming both (`output limit of N bytes reached`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LimitReached {
    /// The limit's name (`output`, `scratch`, `memory`, `put-blob`, `time`).
    pub name: &'static str,
    /// Its value.
    pub value: u64,
    /// One line naming it and its value.
    pub message: String,
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

    /// Reserves `bytes`, or fails naming the limit.
    pub fn charge(&mut self, bytes: u64) -> Result<(), LimitReached> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => Err(LimitReached {
                name: "output",
                value: self.limit,
                message: format!("output limit of {} bytes reached", self.limit),
            }),
        }
    }
}

/// The store's resource limiter: wasmtime's [`StoreLimits`], plus a record
/// of which limit stopped the guest, so its failure can name the limit and
/// its value instead of a bare trap.
pub struct Limiter {
    inner: StoreLimits,
    memory_bytes: usize,
    table_elements: usize,
    hit: Option<LimitHit>,
}

/// A limit the store limiter stopped a guest at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitHit {
    /// The limit's policy name (`memory`, `table`).
    pub name: &'static str,
    /// Its value.
    pub value: u64,
    /// One line naming it, its value and what the guest asked for.
    pub message: String,
}

impl Limiter {
    /// A limiter enforcing `limits` (memory, table elements, instances); a
    /// growth past a limit traps.
    pub fn new(limits: &Limits) -> Self {
        // The engine's pooling slots hold no more (a policy cannot ask for
        // more, but `Limits` may be built by hand).
        let table_elements = limits.table_elements.min(ENGINE_MAX_TABLE_ELEMENTS);
        Limiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(table_elements)
                .instances(limits.instances)
                .tables(limits.instances * 4)
                .memories(limits.instances)
                .trap_on_grow_failure(true)
                .build(),
            memory_bytes: limits.memory_bytes,
            table_elements,
            hit: None,
        }
    }

    /// The limit that stopped the guest, if one did.
    pub fn hit(&self) -> Option<&LimitHit> {
        self.hit.as_ref()
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) && desired > self.memory_bytes {
            self.hit = Some(LimitHit {
                name: "memory",
                value: self.memory_bytes as u64,
                message: format!(
                    "memory limit of {} bytes exceeded (the guest asked for {desired})",
                    self.memory_bytes
                ),
            });
        }
        allowed
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) && desired > self.table_elements {
            self.hit = Some(LimitHit {
                name: "table",
                value: self.table_elements as u64,
                message: format!(
                    "table limit of {} elements exceeded (the guest asked for {desired})",
                    self.table_elements
                ),
            });
        }
        allowed
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
