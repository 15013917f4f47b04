//! The sandbox policy (`--policy FILE`, TOML): default limits, per-component
//! overrides keyed by component name or sha256 digest, pinning of
//! third-party components, allowed network hosts and the kind of
//! destination a component may write. Without a file the policy is
//! [`Policy::default`]: the default [`Limits`], unpinned components allowed,
//! no network, any destination. `outport policy show` prints the effective
//! policy. Its JSON Schema, `schemas/policy.schema.json`, is generated from
//! these types ([`crate::schemas`]); their doc comments are its descriptions.
//!
//! A policy is checked once, when it is read: a digest key is parsed into
//! oci-spec's [`Digest`] (`sha256:` and 64 lowercase hex digits; a key in
//! upper case is refused, naming it, as the OCI image spec and the
//! distribution tools refuse such a digest) and each `network-hosts` list into
//! an [`AllowList`], so a run only looks them up.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use oci_spec::image::{Digest, DigestAlgorithm};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::{
    DestinationRule, ENGINE_MAX_INSTANCES, ENGINE_MAX_MEMORY_BYTES, ENGINE_MAX_TABLE_ELEMENTS,
    Limits, MAX_SECONDS,
};

/// The policy file of `outport export --policy FILE` (TOML; this schema
/// describes its parsed form). Unknown keys are errors. `outport policy
/// show` prints the effective policy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    /// Whether a third-party component (`type=wasm,component=PATH`, or a
    /// plugin found by `type=NAME` in a plugin directory) whose sha256
    /// digest is not a key of `components` may run (default true).
    /// Built-in exporters always may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unpinned: Option<bool>,
    /// Limits of every instance, unless a component entry overrides them.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Per-component entries keyed by name (a built-in exporter's name, or
    /// a component file's or plugin's name without `.wasm`) or by digest
    /// (`sha256:` and 64 lowercase hex digits; such a key also pins the
    /// component). A digest entry applies over a name entry.
    #[serde(default)]
    #[schemars(schema_with = "components_schema")]
    pub components: BTreeMap<ComponentKey, ComponentPolicy>,
}

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

/// One `[components."KEY"]` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentPolicy {
    /// Limits of this component, over the policy's `limits`.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Hosts the component may reach through `wasi:http`: `host`,
    /// `host:port` (that port only) or `*.domain` (its subdomains).
    /// Requests to any other host are refused by the host
    /// (`HTTP-request-denied`). Without an entry a component gets no
    /// network, except the built-ins that talk to the network: the
    /// `registry` exporter and cache backend may reach exactly the
    /// registries their `name=` or `ref=` options name, the `s3` cache
    /// backend its endpoint. An entry for one of them replaces that
    /// default, and a push to a registry it does not allow fails before any
    /// request.
    #[serde(default, skip_serializing_if = "NetworkHosts::is_empty")]
    pub network_hosts: NetworkHosts,
    /// Imports granted beyond the default set (`outport inspect` shows what
    /// a component asks for): a package such as `wasi:sockets` (which
    /// Python and JavaScript runtimes import whether or not they use it) or
    /// one interface (`wasi:sockets/tcp`). Granting `wasi:sockets` lets the
    /// component run; every socket operation is still denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*(/[a-z][a-z0-9-]*)?$")))]
    pub imports: Vec<String>,
    /// The kind of destination the component may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationRule>,
}

/// The key of a `[components."KEY"]` entry: a component's name, or its
/// digest. Keys order and compare as the text they were written as.
#[derive(Clone, Debug)]
pub enum ComponentKey {
    /// A built-in exporter's name, or a component file's or plugin's name
    /// without `.wasm`: any key not starting with `sha256:`.
    Name(String),
    /// A key starting with `sha256:`: a component's digest, `sha256:` and
    /// 64 lowercase hex digits.
    Digest(Digest),
}

impl ComponentKey {
    /// Parses a key as the policy writes it; the error names the key.
    pub fn parse(key: &str) -> Result<ComponentKey, String> {
        if !key.starts_with("sha256:") {
            return Ok(ComponentKey::Name(key.to_string()));
        }
        parse_digest(key).map(ComponentKey::Digest).ok_or_else(|| {
            let upper = key.bytes().any(|b| b.is_ascii_uppercase());
            format!(
                "components.\"{key}\": a digest key is sha256: and 64 hex digits, in lowercase{}",
                if upper {
                    " (write the digest as `outport inspect` prints it)"
                } else {
                    ""
                }
            )
        })
    }

    /// The key as written.
    pub fn as_str(&self) -> &str {
        match self {
            ComponentKey::Name(name) => name,
            ComponentKey::Digest(digest) => digest.as_ref(),
        }
    }
}

/// `digest` as a sha256 digest (`sha256:` and 64 lowercase hex digits),
/// or `None`.
fn parse_digest(digest: &str) -> Option<Digest> {
    let parsed: Digest = digest.parse().ok()?;
    (*parsed.algorithm() == DigestAlgorithm::Sha256).then_some(parsed)
}

impl PartialEq for ComponentKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ComponentKey {}

impl PartialOrd for ComponentKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ComponentKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for ComponentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ComponentKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ComponentKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        ComponentKey::parse(&key).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for ComponentKey {
    fn schema_name() -> Cow<'static, str> {
        "ComponentKey".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "anyOf": [
                { "pattern": "^sha256:[0-9a-f]{64}$" },
                { "not": { "pattern": "^sha256:" } }
            ]
        })
    }
}

/// `components`: an object whose keys are [`ComponentKey`]s.
fn components_schema(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "propertyNames": ComponentKey::json_schema(generator),
        "additionalProperties": generator.subschema_for::<ComponentPolicy>(),
    })
}

/// A `network-hosts` list: the entries as written (what `outport policy
/// show` prints back) and the [`AllowList`] they parse into, once, when
/// the policy is read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct NetworkHosts {
    written: Vec<String>,
    allowed: AllowList,
}

impl NetworkHosts {
    /// Whether the list is empty (no entry: the component's default).
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// The hosts the list allows.
    pub fn allow_list(&self) -> &AllowList {
        &self.allowed
    }
}

impl TryFrom<Vec<String>> for NetworkHosts {
    type Error = String;

    fn try_from(written: Vec<String>) -> Result<Self, String> {
        let allowed = AllowList::parse(&written).map_err(|e| format!("network-hosts: {e}"))?;
        Ok(NetworkHosts { written, allowed })
    }
}

impl From<NetworkHosts> for Vec<String> {
    fn from(hosts: NetworkHosts) -> Vec<String> {
        hosts.written
    }
}

impl JsonSchema for NetworkHosts {
    fn schema_name() -> Cow<'static, str> {
        "NetworkHosts".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // What `allow_list`'s parser accepts: DNS labels (letters, digits,
        // inner hyphens), a first label `*`, an optional port.
        json_schema!({
            "type": "array",
            "items": {
                "type": "string",
                "pattern": r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]{1,5})?$"
            }
        })
    }
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
        }
        Ok(())
    }

    /// The entry for component `name`, if any.
    fn entry_named(&self, name: &str) -> Option<&ComponentPolicy> {
        self.components.get(&ComponentKey::Name(name.to_string()))
    }

    /// The entry for the component with `digest` (`sha256:<hex>`), if any.
    fn entry_for_digest(&self, digest: &str) -> Option<&ComponentPolicy> {
        let digest = parse_digest(digest)?;
        self.components.get(&ComponentKey::Digest(digest))
    }

    /// Whether any limit of the policy sets fuel (the engine then meters
    /// fuel; components without a fuel limit get unlimited fuel).
    pub fn uses_fuel(&self) -> bool {
        self.limits.fuel.is_some() || self.components.values().any(|c| c.limits.fuel.is_some())
    }

    /// The imports granted to component `name` with `digest` beyond the
    /// default set (its digest's entry and its name's).
    pub fn imports_for(&self, name: &str, digest: &str) -> Vec<String> {
        [self.entry_for_digest(digest), self.entry_named(name)]
            .into_iter()
            .flatten()
            .flat_map(|entry| entry.imports.iter().cloned())
            .collect()
    }

    /// Whether unpinned third-party components may run.
    pub fn allows_unpinned(&self) -> bool {
        self.allow_unpinned.unwrap_or(true)
    }

    /// Whether a component with `digest` (`sha256:<hex>`) is pinned.
    pub fn is_pinned(&self, digest: &str) -> bool {
        self.entry_for_digest(digest).is_some()
    }

    /// The limits of component `name` with `digest`: `base` (the run's
    /// defaults), then the policy's `[limits]`, then the entry for its name,
    /// then the entry for its digest.
    pub fn limits_for(&self, base: &Limits, name: &str, digest: &str) -> Limits {
        let mut limits = self.limits.apply(base);
        for entry in [self.entry_named(name), self.entry_for_digest(digest)]
            .into_iter()
            .flatten()
        {
            limits = entry.limits.apply(&limits);
            if let Some(rule) = entry.destination {
                limits.destination = rule;
            }
        }
        limits
    }

    /// The hosts component `name` with `digest` may reach, when the policy
    /// names any: its digest's entry's `network-hosts`, else its name's.
    /// `None` leaves the component's default (no network, or for the
    /// built-in `registry` exporter the registries of its `name=` options).
    pub fn network_for(&self, name: &str, digest: &str) -> Option<AllowList> {
        [self.entry_for_digest(digest), self.entry_named(name)]
            .into_iter()
            .flatten()
            .map(|entry| &entry.network_hosts)
            .find(|hosts| !hosts.is_empty())
            .map(|hosts| hosts.allow_list().clone())
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
    fn keys_and_network_hosts_are_parsed_once_when_the_policy_is_read() {
        let upper = format!("sha256:{}", DIGEST["sha256:".len()..].to_uppercase());
        let e = Policy::parse(&format!(
            "[components.\"{upper}\".limits]\nmemory-bytes = 1\n"
        ))
        .unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
        assert!(e.contains(&format!("components.\"{upper}\"")), "{e}");
        assert!(e.contains("in lowercase"), "{e}");

        let p = Policy::parse(&format!(
            "[components.oci]\n[components.\"{DIGEST}\"]\n\
             network-hosts = [\"Registry.Example.com:5000\"]\nimports = [\"wasi:sockets\"]\n"
        ))
        .unwrap();
        let keys: Vec<&ComponentKey> = p.components.keys().collect();
        assert!(matches!(
            keys[..],
            [ComponentKey::Name(_), ComponentKey::Digest(_)]
        ));
        let list = p.network_for("oci", DIGEST).unwrap();
        assert!(list.allows("registry.example.com", 5000));
        assert!(!list.allows("registry.example.com", 443));
        assert!(p.network_for("oci", "sha256:other").is_none());
        assert!(p.is_pinned(DIGEST) && !p.is_pinned("oci"));
        assert_eq!(p.imports_for("x", DIGEST), ["wasi:sockets"]);
        // Printed back as written.
        assert!(
            p.to_toml()
                .contains("network-hosts = [\"Registry.Example.com:5000\"]"),
            "{}",
            p.to_toml()
        );
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
