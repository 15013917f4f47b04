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
//! oci-spec's [`Digest`](oci_spec::image::Digest) (`sha256:` and 64 lowercase hex digits; a key in
//! upper case is refused, naming it, as the OCI image spec and the
//! distribution tools refuse such a digest) and each `network-hosts` list into
//! an [`AllowList`], so a run only looks them up.

pub mod error;
mod keys;
mod limit_settings;

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::{DestinationRule, Limits};
pub use error::PolicyError;
pub use keys::{ComponentKey, NetworkHosts};
use keys::{components_schema, parse_digest};
pub use limit_settings::LimitSettings;

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

impl Policy {
    /// Reads and checks a policy file. Every error is one line naming the
    /// file (and the unknown key, for one).
    pub fn load(path: &Path) -> Result<Policy, Error> {
        let error = |source| Error::Policy {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(PolicyError::Read(e)))?;
        Policy::parse(&text).map_err(error)
    }

    /// Parses and checks policy text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|source| {
            let line = source.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                before.iter().filter(|&&b| b == b'\n').count() + 1
            });
            PolicyError::Syntax {
                line,
                source: Box::new(source),
            }
        })?;
        policy.check()?;
        Ok(policy)
    }

    fn check(&self) -> Result<(), PolicyError> {
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
mod tests;
