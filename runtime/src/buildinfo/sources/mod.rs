//! The build-info document (`moby.buildkit.buildinfo.v0`): its types, the
//! `--build-sources` file, merging, normalisation and credential redaction.
//!
//! Here: the document and its normalisation; `redact.rs`: credentials
//! stripped from URL-like strings; `inputs.rs`: the `--build-sources` file
//! and `--attr` arguments.

mod inputs;
mod redact;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use base64::Engine as _;
use outport_oci::reference;
use serde::{Deserialize, Serialize};

pub use inputs::{parse_attrs, read_sources_file};
pub use redact::redact;

use super::error::DecodeError;

/// Source type of a base image or any other image.
pub const TYPE_IMAGE: &str = "image";
/// Source type of a git repository.
pub const TYPE_GIT: &str = "git";
/// Source type of a file fetched over HTTP(S).
pub const TYPE_HTTP: &str = "http";

/// The decoded build-info document, in BuildKit's field order (v0.9 wrote
/// only `sources`; v0.10–v0.11 added `frontend`, `attrs` and `deps`).
/// Unknown fields of an input's document are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The frontend that built the image (`dockerfile.v0`), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub frontend: String,
    /// Build attributes (`build-arg:FOO`, `context`, ...); only written
    /// for outputs with `buildinfo-attrs=true`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, Option<String>>,
    /// The sources, deduplicated and sorted.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Build info of named dependencies (nested builds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deps: BTreeMap<String, BuildInfo>,
}

/// One source of a build.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// `image`, `git` or `http`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What the build referred to (an image reference, a git URL, a URL).
    #[serde(rename = "ref", default)]
    pub reference: String,
    /// The reference as the user wrote it, when it differs (BuildKit).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// What the reference resolved to: a digest or a commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pin: String,
}

impl BuildInfo {
    /// True when the document says nothing.
    pub fn is_empty(&self) -> bool {
        self.frontend.is_empty()
            && self.attrs.is_empty()
            && self.sources.is_empty()
            && self.deps.is_empty()
    }

    /// Decodes a config's `moby.buildkit.buildinfo.v0` value (base64 of JSON).
    pub fn decode(value: &str) -> Result<BuildInfo, DecodeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(DecodeError::Base64)?;
        serde_json::from_slice(&bytes).map_err(DecodeError::Json)
    }

    /// The deterministic encoding: base64 of compact JSON, fields in a fixed
    /// order, maps sorted by key, sources sorted (see [`BuildInfo::normalize`]).
    pub fn encode(&self) -> String {
        // Serialising plain strings, vectors and BTreeMaps cannot fail.
        let json = serde_json::to_vec(self).expect("build info serialises");
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Puts the document in canonical form, recursively through `deps`:
    /// credentials stripped from every URL-like ref, alias and attribute,
    /// image refs normalised, sources deduplicated and sorted; attributes
    /// dropped unless `keep_attrs`.
    pub fn normalize(&mut self, keep_attrs: bool) {
        self.frontend = redact(&self.frontend);
        if keep_attrs {
            for value in self.attrs.values_mut().flatten() {
                *value = redact(value);
            }
        } else {
            self.attrs.clear();
        }
        self.sources = dedup(std::mem::take(&mut self.sources));
        for dep in self.deps.values_mut() {
            dep.normalize(keep_attrs);
        }
    }
}

/// Normalises and redacts each source, drops duplicates and sorts them by
/// reference (as BuildKit does), then type, pin and alias. A source without
/// a pin is dropped when the same type and reference is also pinned.
pub fn dedup(sources: Vec<Source>) -> Vec<Source> {
    let mut by_key: BTreeMap<(String, String, String), Source> = BTreeMap::new();
    for source in sources.into_iter().map(normalize_source) {
        let key = (
            source.reference.clone(),
            source.kind.clone(),
            source.pin.clone(),
        );
        by_key
            .entry(key)
            .and_modify(|kept| {
                if kept.alias.is_empty() {
                    kept.alias = source.alias.clone();
                }
            })
            .or_insert(source);
    }
    let pinned: std::collections::BTreeSet<(String, String)> = by_key
        .values()
        .filter(|s| !s.pin.is_empty())
        .map(|s| (s.reference.clone(), s.kind.clone()))
        .collect();
    by_key
        .into_values()
        .filter(|s| !s.pin.is_empty() || !pinned.contains(&(s.reference.clone(), s.kind.clone())))
        .collect()
}

/// One source in canonical form: BuildKit v0.10's `docker-image` type is
/// `image`; image references are normalised (`alpine` →
/// `docker.io/library/alpine:latest`) and pinned to the digest they carry;
/// every other reference has its credentials stripped.
fn normalize_source(mut source: Source) -> Source {
    if source.kind == "docker-image" {
        source.kind = TYPE_IMAGE.to_string();
    }
    if source.kind == TYPE_IMAGE {
        source.reference = normalize_image_ref(&source.reference);
        if source.pin.is_empty()
            && let Some((_, digest)) = source.reference.rsplit_once('@')
        {
            source.pin = digest.to_string();
        }
    }
    source.reference = redact(&source.reference);
    source.alias = redact(&source.alias);
    source.pin = redact(&source.pin);
    source
}

/// Docker's reference normalisation ([`reference::split`]): a missing
/// registry is `docker.io`, a one-part Docker Hub name lives in `library/`,
/// and a reference with neither tag nor digest means `:latest`. Nothing is
/// checked; anything odd (a URL, whitespace) is left as given.
pub fn normalize_image_ref(reference: &str) -> String {
    let reference = reference.trim();
    if reference.is_empty() || reference.contains("://") || reference.contains(char::is_whitespace)
    {
        return reference.to_string();
    }
    reference::split(reference).normalized()
}
