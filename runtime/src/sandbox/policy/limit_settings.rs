//! The limits a policy may set, applied over the run's, and checked
//! against what the engine supports when the policy is read.

use std::time::Duration;

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use super::error::PolicyError;
use crate::sandbox::limits::{
    ENGINE_MAX_INSTANCES, ENGINE_MAX_MEMORY_BYTES, ENGINE_MAX_TABLE_ELEMENTS, Limits, MAX_SECONDS,
};

/// Limits a policy may set. An unset limit keeps the value below it: for
/// a component entry the policy's `limits`, for those the default given
/// with each.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = limit_defaults)]
pub struct LimitSettings {
    /// Largest linear memory, in bytes; it also bounds the host memory of
    /// the instance's layer conversions. At most 1073741824 (1 GiB), what
    /// the engine's instance slots hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = ENGINE_MAX_MEMORY_BYTES))]
    pub memory_bytes: Option<u64>,
    /// Most elements in one table; the engine's instance slots hold no
    /// more than the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = ENGINE_MAX_TABLE_ELEMENTS))]
    pub table_elements: Option<u64>,
    /// Most core instances a component may create; the engine allows no
    /// more per component than the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = ENGINE_MAX_INSTANCES))]
    pub instances: Option<u64>,
    /// Wall-clock limit of an instance, in seconds: everything done for it
    /// (`--timeout` replaces this default, not a component's own). At most
    /// ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub timeout_seconds: Option<u64>,
    /// Bytes an instance may write to its destination, host fast path and
    /// guest writes alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Bytes of log lines an instance may emit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    /// Most handles an instance holds at once, open files included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<u64>,
    /// Bytes of the blobs an instance creates with `put-blob` (held in host
    /// memory until the instance ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_blob_bytes: Option<u64>,
    /// Temporary disk the host uses for an instance: each `convert-layers`
    /// conversion may decompress and write at most this many bytes, and the
    /// converted layers it is handed total at most this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_bytes: Option<u64>,
    /// Longest wait, in seconds, for an HTTP connection and TLS handshake
    /// through `wasi:http`. At most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub http_connect_seconds: Option<u64>,
    /// Longest wait, in seconds, once a request and its body are sent, for
    /// the response's first byte. At most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub http_first_byte_seconds: Option<u64>,
    /// Longest pause, in seconds, between two parts of a response body. At
    /// most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub http_between_bytes_seconds: Option<u64>,
    /// Fuel (about one unit per wasm instruction) an instance may burn;
    /// unset (the default) means no fuel metering. Setting it anywhere
    /// makes the run meter fuel; components without a fuel limit then get
    /// unlimited fuel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock limit, in seconds, of compiling a third-party component,
    /// in a child process killed past it. At most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub compile_timeout_seconds: Option<u64>,
    /// Address-space limit (`RLIMIT_AS`), in bytes, of the child process
    /// compiling a third-party component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_memory_bytes: Option<u64>,
}

/// Adds each limit's default (what an unset limit everywhere gives) to
/// the schema of [`LimitSettings`].
fn limit_defaults(schema: &mut Schema) {
    let Ok(serde_json::Value::Object(defaults)) =
        serde_json::to_value(LimitSettings::from_limits(&Limits::default()))
    else {
        return;
    };
    let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for (name, value) in defaults {
        if let Some(serde_json::Value::Object(property)) = properties.get_mut(&name) {
            property.insert("default".into(), value);
        }
    }
}

/// Clamps a policy number into `usize`.
fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl LimitSettings {
    /// `base` with every limit set here replacing its value.
    pub fn apply(&self, base: &Limits) -> Limits {
        let mut l = base.clone();
        if let Some(v) = self.memory_bytes {
            l.memory_bytes = to_usize(v);
        }
        if let Some(v) = self.table_elements {
            l.table_elements = to_usize(v);
        }
        if let Some(v) = self.instances {
            l.instances = to_usize(v);
        }
        if let Some(v) = self.timeout_seconds {
            l.timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.output_bytes {
            l.output_bytes = v;
        }
        if let Some(v) = self.log_bytes {
            l.log_bytes = to_usize(v);
        }
        if let Some(v) = self.resources {
            l.resources = to_usize(v);
        }
        if let Some(v) = self.put_blob_bytes {
            l.put_blob_bytes = v;
        }
        if let Some(v) = self.scratch_bytes {
            l.scratch_bytes = v;
        }
        if let Some(v) = self.http_connect_seconds {
            l.http_connect_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.http_first_byte_seconds {
            l.http_first_byte_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.http_between_bytes_seconds {
            l.http_between_bytes_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.fuel {
            l.fuel = Some(v);
        }
        if let Some(v) = self.compile_timeout_seconds {
            l.compile_timeout = Duration::from_secs(v);
        }
        if let Some(v) = self.compile_memory_bytes {
            l.compile_memory_bytes = v;
        }
        l
    }

    /// Checks every limit set here against what the engine supports;
    /// `at` names the table (`limits`, `components."oci".limits`).
    pub(super) fn check(&self, at: &str) -> Result<(), PolicyError> {
        let engine_max = [
            ("memory-bytes", self.memory_bytes, ENGINE_MAX_MEMORY_BYTES),
            (
                "table-elements",
                self.table_elements,
                ENGINE_MAX_TABLE_ELEMENTS,
            ),
            ("instances", self.instances, ENGINE_MAX_INSTANCES),
        ];
        for (name, value, max) in engine_max {
            if let Some(v) = value
                && v > max as u64
            {
                return Err(PolicyError::EngineMax {
                    at: at.to_string(),
                    name,
                    value: v,
                    max,
                });
            }
        }
        let seconds = [
            ("timeout-seconds", self.timeout_seconds),
            ("http-connect-seconds", self.http_connect_seconds),
            ("http-first-byte-seconds", self.http_first_byte_seconds),
            (
                "http-between-bytes-seconds",
                self.http_between_bytes_seconds,
            ),
            ("compile-timeout-seconds", self.compile_timeout_seconds),
        ];
        for (name, value) in seconds {
            if let Some(v) = value
                && v > MAX_SECONDS
            {
                return Err(PolicyError::TooLong {
                    at: at.to_string(),
                    name,
                    value: v,
                });
            }
        }
        Ok(())
    }

    /// Every limit of `limits`, set.
    pub fn from_limits(limits: &Limits) -> Self {
        LimitSettings {
            memory_bytes: Some(limits.memory_bytes as u64),
            table_elements: Some(limits.table_elements as u64),
            instances: Some(limits.instances as u64),
            timeout_seconds: Some(limits.timeout.as_secs()),
            output_bytes: Some(limits.output_bytes),
            log_bytes: Some(limits.log_bytes as u64),
            resources: Some(limits.resources as u64),
            put_blob_bytes: Some(limits.put_blob_bytes),
            scratch_bytes: Some(limits.scratch_bytes),
            http_connect_seconds: Some(limits.http_connect_timeout.as_secs()),
            http_first_byte_seconds: Some(limits.http_first_byte_timeout.as_secs()),
            http_between_bytes_seconds: Some(limits.http_between_bytes_timeout.as_secs()),
            fuel: limits.fuel,
            compile_timeout_seconds: Some(limits.compile_timeout.as_secs()),
            compile_memory_bytes: Some(limits.compile_memory_bytes),
        }
    }
}
