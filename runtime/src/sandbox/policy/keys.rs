//! The keys of `[components."KEY"]` entries (a name or a digest) and the
//! `network-hosts` lists, each parsed once, when the policy is read.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use oci_spec::image::{Digest, DigestAlgorithm};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::ComponentPolicy;
use super::error::PolicyError;
use crate::sandbox::allow_list::AllowList;

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
    pub fn parse(key: &str) -> Result<ComponentKey, PolicyError> {
        if !key.starts_with("sha256:") {
            return Ok(ComponentKey::Name(key.to_string()));
        }
        parse_digest(key)
            .map(ComponentKey::Digest)
            .ok_or_else(|| PolicyError::DigestKey {
                key: key.to_string(),
                upper: key.bytes().any(|b| b.is_ascii_uppercase()),
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
pub(super) fn parse_digest(digest: &str) -> Option<Digest> {
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
pub(super) fn components_schema(generator: &mut SchemaGenerator) -> Schema {
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
    type Error = PolicyError;

    fn try_from(written: Vec<String>) -> Result<Self, PolicyError> {
        let allowed = AllowList::parse(&written).map_err(PolicyError::NetworkHosts)?;
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
