//! The sandbox policy (`--policy FILE`, TOML): default limits, per-component
//! overrides keyed by component name or sha256 digest, pinning of
//! third-party components, allowed network hosts and the kind of
//! destination a component may write. Without a file the policy is
//! [`Policy::default`]: the default [`Limits`], unpinned components allowed,
//! no network, any destination. `outport policy show` prints the effective
//! policy. The schema is `schemas/policy.schema.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::{
    DestinationRule, ENGINE_MAX_INSTANCES, ENGINE_MAX_MEMORY_BYTES, ENGINE_MAX_TABLE_ELEMENTS,
    Limits, MAX_SECONDS,
};

/// A whole policy file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    /// Whether a third-party component (`type=wasm,component=PATH` or a
    /// plugin found by name) whose digest is not a key of `[components]`
    /// may run (default: true). Built-in exporters always may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unpinned: Option<bool>,
    /// Limits for every instance unless a component entry overrides them.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Per-component entries, keyed by name (`oci`, a component file's or
    /// plugin's name without `.wasm`) or digest (`sha256:<hex>`).
    #[serde(default)]
    pub components: BTreeMap<String, ComponentPolicy>,
}

/// Limits a policy may set; unset ones keep the value below them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_elements: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_blob_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_connect_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_first_byte_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_between_bytes_seconds: Option<u64>,
    /// Unset: no fuel metering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_memory_bytes: Option<u64>,
}

/// One `[components."KEY"]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentPolicy {
    /// Limits for this component, over the policy's defaults.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Hosts the component may reach through `wasi:http` (`host`,
    /// `host:port`, `*.domain`); see [`crate::sandbox::allow_list`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_hosts: Vec<String>,
    /// Imports granted beyond the default set: packages (`wasi:sockets`) or
    /// interfaces (`wasi:sockets/tcp`); see [`crate::sandbox::imports`]. Granting
    /// `wasi:sockets` lets a component that imports it run; its socket
    /// operations are still denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// What the component may write: a `directory`, a `file`, or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationRule>,
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
    fn check(&self, at: &str) -> Result<(), String> {
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
                return Err(format!(
                    "{at}.{name} = {v} is more than the engine supports (at most {max})"
                ));
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
                return Err(format!(
                    "{at}.{name} = {v} is more than the longest limit supported ({MAX_SECONDS} s, ten years)"
                ));
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

impl Policy {
    /// Reads and checks a policy file. Every error is one line naming the
    /// file (and the unknown key, for one).
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!("policy file {}: cannot read: {e}", path.display()))
        })?;
        Policy::parse(&text)
            .map_err(|e| Error::Usage(format!("policy file {}: {e}", path.display())))
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (a snippet of the file);
            // its first line names the problem and the key.
            let message = e.message().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let before = &text.as_bytes()[..span.start.min(text.len())];
                    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                    format!("line {line}: {message}")
                }
                None => message,
            }
        })?;
        policy.check()?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), String> {
        self.limits.check("limits")?;
        for (key, entry) in &self.components {
            entry
                .limits
                .check(&format!("components.\"{key}\".limits"))?;
            if let Some(hex) = key.strip_prefix("sha256:")
                && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(format!(
                    "components.\"{key}\": a digest key is sha256: and 64 hex digits"
                ));
            }
            AllowList::parse(&entry.network_hosts)
                .map_err(|e| format!("components.\"{key}\".network-hosts: {e}"))?;
        }
        Ok(())
    }

    /// Whether any limit of the policy sets fuel (the engine then meters
    /// fuel; components without a fuel limit get unlimited fuel).
    pub fn uses_fuel(&self) -> bool {
        self.limits.fuel.is_some() || self.components.values().any(|c| c.limits.fuel.is_some())
    }

    /// The imports granted to component `name` with `digest` beyond the
    /// default set (its digest's entry and its name's).
    pub fn imports_for(&self, name: &str, digest: &str) -> Vec<String> {
        [digest, name]
            .iter()
            .filter_map(|key| self.components.get(*key))
            .flat_map(|entry| entry.imports.iter().cloned())
            .collect()
    }

    /// Whether unpinned third-party components may run.
    pub fn allows_unpinned(&self) -> bool {
        self.allow_unpinned.unwrap_or(true)
    }

    /// Whether a component with `digest` (`sha256:<hex>`) is pinned.
    pub fn is_pinned(&self, digest: &str) -> bool {
        self.components.contains_key(digest)
    }

    /// The limits of component `name` with `digest`: `base` (the run's
    /// defaults), then the policy's `[limits]`, then the entry for its name,
    /// then the entry for its digest.
    pub fn limits_for(&self, base: &Limits, name: &str, digest: &str) -> Limits {
        let mut limits = self.limits.apply(base);
        for key in [name, digest] {
            if let Some(entry) = self.components.get(key) {
                limits = entry.limits.apply(&limits);
                if let Some(rule) = entry.destination {
                    limits.destination = rule;
                }
            }
        }
        limits
    }

    /// The hosts component `name` with `digest` may reach, when the policy
    /// names any: its digest's entry's `network-hosts`, else its name's.
    /// `None` leaves the component's default (no network, or for the
    /// built-in `registry` exporter the registries of its `name=` options).
    pub fn network_for(&self, name: &str, digest: &str) -> Option<AllowList> {
        [digest, name].iter().find_map(|key| {
            let hosts = &self.components.get(*key)?.network_hosts;
            // Checked when the policy was parsed.
            (!hosts.is_empty()).then(|| AllowList::parse(hosts).unwrap_or_default())
        })
    }

    /// The effective policy over `base`: every default limit spelled out,
    /// as `outport policy show` prints it.
    pub fn effective(&self, base: &Limits) -> Policy {
        let mut shown = self.clone();
        shown.allow_unpinned = Some(self.allows_unpinned());
        shown.limits = LimitSettings::from_limits(&self.limits.apply(base));
        shown
    }

    /// The policy as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn no_policy_is_the_default_limits() {
        let p = Policy::parse("").unwrap();
        assert!(p.allows_unpinned());
        let l = p.limits_for(&Limits::default(), "oci", DIGEST);
        assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
        assert_eq!(l.destination, DestinationRule::Any);
    }

    #[test]
    fn digest_overrides_name_overrides_defaults() {
        let text = format!(
            "allow-unpinned = false\n[limits]\nmemory-bytes = 100\noutput-bytes = 5\n\
             [components.misbehave.limits]\nmemory-bytes = 200\n\
             [components.\"{DIGEST}\"]\ndestination = \"file\"\nnetwork-hosts = [\"*.example.com\"]\n\
             [components.\"{DIGEST}\".limits]\nmemory-bytes = 300\n"
        );
        let p = Policy::parse(&text).unwrap();
        assert!(!p.allows_unpinned());
        assert!(p.is_pinned(DIGEST));
        let l = p.limits_for(&Limits::default(), "misbehave", DIGEST);
        assert_eq!((l.memory_bytes, l.output_bytes), (300, 5));
        assert_eq!(l.destination, DestinationRule::File);
        let other = p.limits_for(&Limits::default(), "misbehave", "sha256:x");
        assert_eq!(other.memory_bytes, 200);
        let shown = Policy::parse(&p.effective(&Limits::default()).to_toml()).unwrap();
        assert_eq!(shown.limits.output_bytes, Some(5));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_in_one_line() {
        for (text, needle) in [
            ("memory = 1\n", "memory"),
            ("[limits]\nmemroy-bytes = 1\n", "memroy-bytes"),
            ("[components.oci]\nfoo = 1\n", "foo"),
            ("[components.\"sha256:12\"]\n", "64 hex"),
            ("[components.x]\nnetwork-hosts = [\"a b\"]\n", "not a host"),
            ("[components.x]\ndestination = \"pipe\"\n", "pipe"),
            (
                "[limits]\nmemory-bytes = 4294967296\n",
                "limits.memory-bytes = 4294967296 is more than the engine supports (at most 1073741824)",
            ),
            (
                "[components.oci.limits]\ntable-elements = 20001\n",
                "components.\"oci\".limits.table-elements = 20001 is more than the engine supports (at most 20000)",
            ),
            ("[limits]\ninstances = 17\n", "limits.instances = 17"),
            (
                "[limits]\ntimeout-seconds = 18446744073709551615\n",
                "timeout-seconds = 18446744073709551615 is more than the longest",
            ),
            (
                "[components.x.limits]\ncompile-timeout-seconds = 315360001\n",
                "compile-timeout-seconds = 315360001",
            ),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
