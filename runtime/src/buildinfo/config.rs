//! Rewriting an image so that each image config carries its build info:
//! new config blobs, manifests pointing at them, indexes pointing at the
//! manifests, a new root. Only the changed members of each JSON object are
//! re-encoded; every other member keeps its place and its bytes.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::image::Descriptor;
use outport_image::Image;
use outport_oci::document::{self, ImageConfig};
use outport_oci::media;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::error::{Cause, Document, DocumentError};
use super::sources::{BuildInfo, Source, TYPE_IMAGE};

/// The config key BuildKit v0.9–v0.11 wrote build info under.
pub const CONFIG_KEY: &str = "moby.buildkit.buildinfo.v0";
/// Manifest (or index entry) annotation naming the base image.
pub const ANN_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Manifest (or index entry) annotation with the base image's digest.
pub const ANN_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Index entry annotation marking BuildKit attestation manifests.
pub(super) const ANN_REFERENCE_TYPE: &str = document::REFERENCE_TYPE;
/// Index entry annotation of an attestation: the manifest it is about.
pub(super) const ANN_REFERENCE_DIGEST: &str = document::REFERENCE_DIGEST;

/// Largest index, manifest or config read (they were read once already
/// when the image was opened).
const MAX_JSON: u64 = 64 << 20;

/// A JSON object as an ordered list of members with their raw bytes.
pub struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push((k, v));
                }
                Ok(RawObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl RawObject {
    /// Parses `bytes` as a JSON object.
    pub fn parse(bytes: &[u8]) -> Result<RawObject, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub(super) fn raw(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// The member `key` decoded as `T`, if present and of that shape.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.raw(key)
            .and_then(|v| serde_json::from_str(v.get()).ok())
    }

    /// Sets member `key` to `value` in place, or appends it.
    pub fn set(&mut self, key: &str, value: &impl serde::Serialize) {
        // Values built here (strings, numbers, objects of them) always serialise.
        let raw = serde_json::value::to_raw_value(value).expect("a JSON value serialises");
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = raw,
            None => self.0.push((key.to_string(), raw)),
        }
    }

    /// Compact JSON: members in their order, untouched values as they were.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // A string always serialises.
            out.extend(serde_json::to_vec(k).expect("a key serialises"));
            out.push(b':');
            out.extend(v.get().as_bytes());
        }
        out.push(b'}');
        out
    }

    /// The object as one raw JSON value, to nest in another.
    pub(super) fn to_raw(&self) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::from_slice(&self.to_vec())
    }
}

/// Host-side inputs to the build info of every platform.
pub struct Plan<'a> {
    /// Sources from `--build-sources`.
    pub sources: &'a [Source],
    /// Attributes from `--attr`.
    pub attrs: &'a BTreeMap<String, String>,
    /// Whether to write attributes.
    pub keep_attrs: bool,
}

/// What one image manifest's config got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    /// `os/arch[/variant]`, from the index entry or else the config.
    pub platform: String,
    /// The encoded build info (the config field's value).
    pub encoded: String,
}

/// The rewritten image (or `None` if nothing changed) and the build info of
/// each image manifest, in walk order.
pub struct Outcome {
    /// The new image, sharing every blob of the input.
    pub image: Option<Image>,
    /// One entry per image manifest that has build info.
    pub platforms: Vec<PlatformInfo>,
    /// Image manifests found (with or without build info).
    pub manifests: usize,
    /// The complete build info of each image manifest (attributes kept,
    /// whatever the plan), by the manifest's digest in the input and in
    /// the new image: what provenance attestations record.
    pub full: BTreeMap<String, BuildInfo>,
}

/// Rewrites `input` for `plan`.
pub fn rewrite(input: &Image, plan: &Plan) -> Result<Outcome, DocumentError> {
    let mut walk = Walk {
        image: input.clone(),
        plan,
        platforms: Vec::new(),
        manifests: 0,
        changed: false,
        full: BTreeMap::new(),
    };
    let root = input.root().clone();
    let entry = Entry::from_descriptor(&root);
    let new = walk.visit(&entry, 0)?;
    let Walk {
        mut image,
        platforms,
        manifests,
        changed,
        full,
        ..
    } = walk;
    if let Some((digest, size)) = new {
        let mut root = root;
        let document = Document::of(&entry.media_type);
        root.set_digest(
            digest
                .parse()
                .map_err(|e| DocumentError::new(document, &digest, Cause::Digest(Box::new(e))))?,
        );
        root.set_size(size);
        image.set_root(root);
    }
    Ok(Outcome {
        image: changed.then_some(image),
        platforms,
        manifests,
        full,
    })
}

/// What the walk knows about a descriptor that points at a node.
pub(super) struct Entry {
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) platform: Option<document::Platform>,
}

impl Entry {
    pub(super) fn from_descriptor(d: &Descriptor) -> Entry {
        Entry {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            annotations: d
                .annotations()
                .as_ref()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            platform: d
                .platform()
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok())
                .and_then(|p| serde_json::from_value(p).ok()),
        }
    }

    pub(super) fn from_raw(o: &RawObject) -> Entry {
        Entry {
            media_type: o.get("mediaType").unwrap_or_default(),
            digest: o.get("digest").unwrap_or_default(),
            annotations: o.get("annotations").unwrap_or_default(),
            platform: o.get("platform"),
        }
    }
}

struct Walk<'a> {
    image: Image,
    plan: &'a Plan<'a>,
    platforms: Vec<PlatformInfo>,
    manifests: usize,
    changed: bool,
    full: BTreeMap<String, BuildInfo>,
}

/// The bytes of the index, manifest or config (`document`) `digest` of
/// `image`.
pub(super) fn read_json_blob(
    image: &Image,
    document: Document,
    digest: &str,
) -> Result<Vec<u8>, DocumentError> {
    let blob = image
        .blob(digest)
        .ok_or_else(|| DocumentError::new(document, digest, Cause::NotInImage))?;
    blob.read_all(MAX_JSON)
        .map_err(|e| DocumentError::new(document, digest, e))
}

impl Walk<'_> {
    fn read(&self, document: Document, digest: &str) -> Result<Vec<u8>, DocumentError> {
        read_json_blob(&self.image, document, digest)
    }

    fn store(&mut self, media_type: &str, bytes: Vec<u8>) -> (String, u64) {
        self.changed = true;
        let d = self.image.insert_blob(media_type, bytes);
        (d.digest().to_string(), d.size())
    }

    /// Visits the node `entry` points at; returns its new digest and size
    /// when it had to be rewritten.
    fn visit(
        &mut self,
        entry: &Entry,
        depth: usize,
    ) -> Result<Option<(String, u64)>, DocumentError> {
        if depth > 8 {
            return Err(DocumentError::new(
                Document::Index,
                &entry.digest,
                Cause::TooDeep,
            ));
        }
        let media_type = entry.media_type.as_str();
        if media::is_index(media_type) {
            self.visit_index(entry, depth)
        } else if media::is_manifest(media_type) {
            self.visit_manifest(entry)
        } else {
            Ok(None)
        }
    }

    fn visit_index(
        &mut self,
        entry: &Entry,
        depth: usize,
    ) -> Result<Option<(String, u64)>, DocumentError> {
        let what = |e: serde_json::Error| DocumentError::new(Document::Index, &entry.digest, e);
        let bytes = self.read(Document::Index, &entry.digest)?;
        let mut index = RawObject::parse(&bytes).map_err(what)?;
        let Some(mut children) = index.get::<Vec<RawObject>>("manifests") else {
            return Ok(None);
        };
        let mut moved: BTreeMap<String, String> = BTreeMap::new();
        for child in &mut children {
            let child_entry = Entry::from_raw(child);
            if child_entry
                .annotations
                .get(ANN_REFERENCE_TYPE)
                .map(String::as_str)
                == Some(document::ATTESTATION_MANIFEST)
            {
                continue;
            }
            if let Some((digest, size)) = self.visit(&child_entry, depth + 1)? {
                child.set("digest", &digest);
                child.set("size", &size);
                moved.insert(child_entry.digest, digest);
            }
        }
        if moved.is_empty() {
            return Ok(None);
        }
        // Attestations keep pointing at the manifest they describe.
        for child in &mut children {
            let Some(mut annotations) = child.get::<RawObject>("annotations") else {
                continue;
            };
            let Some(new) = annotations
                .get::<String>(ANN_REFERENCE_DIGEST)
                .and_then(|old| moved.get(&old))
            else {
                continue;
            };
            annotations.set(ANN_REFERENCE_DIGEST, new);
            let raw = annotations.to_raw().map_err(what)?;
            child.set("annotations", &raw);
        }
        let list: Vec<Box<RawValue>> = children
            .iter()
            .map(RawObject::to_raw)
            .collect::<Result<_, _>>()
            .map_err(what)?;
        index.set("manifests", &list);
        Ok(Some(self.store(&entry.media_type, index.to_vec())))
    }

    fn visit_manifest(&mut self, entry: &Entry) -> Result<Option<(String, u64)>, DocumentError> {
        let what = |e: serde_json::Error| DocumentError::new(Document::Manifest, &entry.digest, e);
        let bytes = self.read(Document::Manifest, &entry.digest)?;
        let mut manifest = RawObject::parse(&bytes).map_err(what)?;
        let Some(mut config_desc) = manifest.get::<RawObject>("config") else {
            return Ok(None);
        };
        let config_entry = Entry::from_raw(&config_desc);
        if !media::is_config(&config_entry.media_type) {
            return Ok(None);
        }
        self.manifests += 1;
        let config_bytes = self.read(Document::Config, &config_entry.digest)?;
        let mut config = RawObject::parse(&config_bytes)
            .map_err(|e| DocumentError::new(Document::Config, &config_entry.digest, e))?;

        let (existing, mut info) = existing_info(&config, &config_entry.digest)?;
        self.add_inputs(&mut info, entry, &manifest);
        info.normalize(true);
        let full = info.clone();
        if !self.plan.keep_attrs {
            info.normalize(false);
        }
        self.full.insert(entry.digest.clone(), full.clone());
        if info.is_empty() && existing.is_none() {
            return Ok(None);
        }
        let encoded = info.encode();
        let image_config: ImageConfig = serde_json::from_slice(&config_bytes).unwrap_or_default();
        self.platforms.push(PlatformInfo {
            platform: platform_key(entry.platform.as_ref(), &image_config),
            encoded: encoded.clone(),
        });
        if existing.as_deref() == Some(encoded.as_str()) {
            return Ok(None);
        }
        config.set(CONFIG_KEY, &encoded);
        let (digest, size) = self.store(&config_entry.media_type, config.to_vec());
        config_desc.set("digest", &digest);
        config_desc.set("size", &size);
        let config_json = config_desc.to_raw().map_err(what)?;
        manifest.set("config", &config_json);
        let (digest, size) = self.store(&entry.media_type, manifest.to_vec());
        self.full.insert(digest.clone(), full);
        Ok(Some((digest, size)))
    }

    /// Adds the plan's sources and attributes to `info`, and the base image
    /// the annotations of the manifest `entry` points at name.
    fn add_inputs(&self, info: &mut BuildInfo, entry: &Entry, manifest: &RawObject) {
        info.sources.extend(self.plan.sources.iter().cloned());
        // The manifest's own annotations win over its index entry's.
        let mut annotations = entry.annotations.clone();
        annotations.extend(
            manifest
                .get::<BTreeMap<String, String>>("annotations")
                .unwrap_or_default(),
        );
        if let Some(name) = annotations.get(ANN_BASE_NAME).filter(|n| !n.is_empty()) {
            info.sources.push(Source {
                kind: TYPE_IMAGE.to_string(),
                reference: name.clone(),
                alias: String::new(),
                pin: annotations
                    .get(ANN_BASE_DIGEST)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        for (k, v) in self.plan.attrs {
            info.attrs.insert(k.clone(), Some(v.clone()));
        }
    }
}

/// The build-info field of the config `digest` as it is (`None` when
/// absent) and decoded (empty when absent).
fn existing_info(
    config: &RawObject,
    digest: &str,
) -> Result<(Option<String>, BuildInfo), DocumentError> {
    let bad = |cause| DocumentError::new(Document::Config, digest, cause);
    let existing: Option<String> = match config.raw(CONFIG_KEY) {
        None => None,
        Some(raw) => Some(
            serde_json::from_str(raw.get())
                .map_err(|_| bad(Cause::NotAString { key: CONFIG_KEY }))?,
        ),
    };
    let info = match &existing {
        Some(value) => BuildInfo::decode(value).map_err(|source| {
            bad(Cause::BuildInfo {
                key: CONFIG_KEY,
                source,
            })
        })?,
        None => BuildInfo::default(),
    };
    Ok((existing, info))
}

/// `os/arch[/variant]` from an index entry's platform, else from the config.
pub(super) fn platform_key(platform: Option<&document::Platform>, config: &ImageConfig) -> String {
    let from = |os: &Option<String>, arch: &Option<String>, variant: &Option<String>| {
        let field = |v: &Option<String>| v.clone().unwrap_or_default();
        (field(os), field(arch), field(variant))
    };
    let (os, arch, variant) = match platform {
        Some(p) if p.os.is_some() => from(&p.os, &p.architecture, &p.variant),
        _ => {
            let p = &config.platform;
            from(&p.os, &p.architecture, &p.variant)
        }
    };
    let os = if os.is_empty() { "unknown".into() } else { os };
    let arch = if arch.is_empty() {
        "unknown".into()
    } else {
        arch
    };
    if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_object_keeps_order_and_bytes() {
        let input = br#"{"b": 1.50, "a":{"x" : [1, 2]},"c":"\u003c"}"#;
        let mut o = RawObject::parse(input).unwrap();
        assert_eq!(o.to_vec(), br#"{"b":1.50,"a":{"x" : [1, 2]},"c":"\u003c"}"#);
        o.set("a", &"new");
        o.set("d", &2);
        assert_eq!(o.to_vec(), br#"{"b":1.50,"a":"new","c":"\u003c","d":2}"#);
        assert_eq!(o.get::<String>("c").as_deref(), Some("<"));
        assert!(RawObject::parse(b"[1]").is_err());
    }

    #[test]
    fn platform_keys() {
        let cfg: ImageConfig =
            serde_json::from_value(json!({"os": "linux", "architecture": "arm", "variant": "v7"}))
                .unwrap();
        assert_eq!(platform_key(None, &cfg), "linux/arm/v7");
        let p: document::Platform =
            serde_json::from_value(json!({"os": "linux", "architecture": "amd64"})).unwrap();
        assert_eq!(platform_key(Some(&p), &cfg), "linux/amd64");
        assert_eq!(
            platform_key(None, &ImageConfig::default()),
            "unknown/unknown"
        );
    }
}
