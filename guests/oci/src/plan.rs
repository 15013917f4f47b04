//! Walks the image from its root, applies the annotation options, and lists
//! the blobs to write, in walk order, each once.
//!
//! Without annotation options nothing is rewritten: the blobs are the input's
//! and the root digest is unchanged. With them, each changed manifest or
//! index is re-serialized (all other fields kept, in their order) and handed
//! to the host with `image::put-blob`, which computes the new digest; parents
//! then point to the new descriptors.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::bindings::outport::exporter::host::{self, Level};
use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::Error;
use crate::media;
use crate::options::Options;

/// Annotation keys that name an image in an OCI layout's `index.json`; the
/// exporter sets them from `name=` and drops the input's.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// BuildKit marks the attestation manifests of an index with this annotation
/// (value `attestation-manifest`); manifest annotations are not applied to them.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// How deep indexes may nest.
const MAX_DEPTH: usize = 8;

/// The exported image's root, after rewriting.
#[derive(Debug, Clone)]
pub struct Root {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// Sorted by key, as Go marshals a map.
    pub annotations: BTreeMap<String, String>,
    pub artifact_type: Option<String>,
}

/// What to write.
pub struct Plan {
    pub root: Root,
    /// The config digest, when the root is a single image manifest.
    pub config_digest: Option<String>,
    /// Every blob, in walk order (parents before children), each digest once.
    pub blobs: Vec<Blob>,
}

/// A visited blob: its descriptor after rewriting.
#[derive(Clone)]
struct Node {
    digest: String,
    size: u64,
    config_digest: Option<String>,
}

struct Walker<'a> {
    opts: &'a Options,
    /// Slots in walk order; a parent reserves its slot before its children.
    slots: Vec<Option<Blob>>,
    visited: BTreeMap<String, Node>,
}

/// Walks the image and plans the output.
pub fn plan(opts: &Options) -> Result<Plan, Error> {
    let input_root = image::root();
    let root_is_index = media::is_index(&input_root.media_type);
    if !root_is_index && !opts.index.is_empty() {
        return Err(Error::InvalidOption(format!(
            "option \"annotation-index.{}\": the image has no index (its root is {})",
            opts.index[0].0, input_root.media_type
        )));
    }
    let mut walker = Walker {
        opts,
        slots: Vec::new(),
        visited: BTreeMap::new(),
    };
    let node = walker.visit(&input_root.media_type, &input_root.digest, true, true, 0)?;

    let mut annotations: BTreeMap<String, String> = input_root
        .annotations
        .into_iter()
        .filter(|(k, _)| k != IMAGE_NAME && k != REF_NAME)
        .collect();
    if !root_is_index {
        annotations.extend(opts.manifest_descriptor.iter().cloned());
    }
    annotations.extend(opts.index_descriptor.iter().cloned());

    let mut seen = BTreeSet::new();
    let blobs = walker
        .slots
        .into_iter()
        .flatten()
        .filter(|b| seen.insert(b.descriptor().digest))
        .collect();
    Ok(Plan {
        root: Root {
            media_type: input_root.media_type,
            digest: node.digest,
            size: node.size,
            annotations,
            artifact_type: input_root.artifact_type,
        },
        config_digest: if root_is_index {
            None
        } else {
            node.config_digest
        },
        blobs,
    })
}

impl Walker<'_> {
    /// Visits the blob `digest` of type `media_type`; `annotate` says whether
    /// manifest annotations apply to it (not to attestation manifests).
    fn visit(
        &mut self,
        media_type: &str,
        digest: &str,
        is_root: bool,
        annotate: bool,
        depth: usize,
    ) -> Result<Node, Error> {
        if let Some(node) = self.visited.get(digest) {
            return Ok(node.clone());
        }
        if depth > MAX_DEPTH {
            return Err(Error::InvalidImage(format!(
                "indexes nest deeper than {MAX_DEPTH} levels at {digest}"
            )));
        }
        let blob = image::get_blob(digest)?;
        let slot = self.slots.len();
        self.slots.push(None);
        let (blob, config_digest) = if media::is_index(media_type) {
            (self.index(blob, media_type, digest, is_root, depth)?, None)
        } else if media::is_manifest(media_type) {
            self.manifest(blob, media_type, digest, annotate)?
        } else {
            (blob, None)
        };
        let desc = blob.descriptor();
        let node = Node {
            digest: desc.digest,
            size: desc.size,
            config_digest,
        };
        self.slots[slot] = Some(blob);
        self.visited.insert(digest.to_owned(), node.clone());
        Ok(node)
    }

    /// A layer or config: written as is. A missing blob whose descriptor has
    /// `urls` (a foreign layer) is skipped.
    fn leaf(&mut self, desc: &Map<String, Value>, owner: &str) -> Result<(), Error> {
        let digest = str_field(desc, "digest", owner)?;
        if self.visited.contains_key(digest) {
            return Ok(());
        }
        let blob = match image::get_blob(digest) {
            Ok(b) => b,
            Err(e) => {
                let foreign = desc
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    return Err(e);
                }
                host::log(
                    Level::Debug,
                    &format!("skipping foreign layer {digest} (not in the image)"),
                );
                return Ok(());
            }
        };
        let d = blob.descriptor();
        self.visited.insert(
            digest.to_owned(),
            Node {
                digest: d.digest,
                size: d.size,
                config_digest: None,
            },
        );
        self.slots.push(Some(blob));
        Ok(())
    }

    fn manifest(
        &mut self,
        blob: Blob,
        media_type: &str,
        digest: &str,
        annotate: bool,
    ) -> Result<(Blob, Option<String>), Error> {
        let mut doc = parse(&blob, digest)?;
        let what = format!("manifest {digest}");
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what} is not a JSON object")))?;
        let config = obj
            .get("config")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?;
        let config_digest = str_field(config, "digest", &what)?.to_owned();
        self.leaf(config, &what)?;
        if let Some(layers) = obj.get("layers") {
            let layers = layers.as_array().ok_or_else(|| {
                Error::InvalidImage(format!("{what}: \"layers\" is not an array"))
            })?;
            for layer in layers {
                let layer = layer.as_object().ok_or_else(|| {
                    Error::InvalidImage(format!("{what}: a layer is not an object"))
                })?;
                self.leaf(layer, &what)?;
            }
        }
        if !annotate || self.opts.manifest.is_empty() {
            return Ok((blob, Some(config_digest)));
        }
        if media::is_docker(media_type) {
            return Err(Error::Unsupported(format!(
                "cannot set manifest annotations on {what}: it has docker media type {media_type}, \
                 which has no annotations"
            )));
        }
        set_annotations(obj, &self.opts.manifest, &what)?;
        let new = put(media_type, &doc, &what)?;
        Ok((new, Some(config_digest)))
    }

    fn index(
        &mut self,
        blob: Blob,
        media_type: &str,
        digest: &str,
        is_root: bool,
        depth: usize,
    ) -> Result<Blob, Error> {
        let mut doc = parse(&blob, digest)?;
        let what = format!("index {digest}");
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what} is not a JSON object")))?;
        let mut changed = false;
        let entries = match obj.get_mut("manifests") {
            Some(Value::Array(entries)) => entries,
            Some(_) => {
                return Err(Error::InvalidImage(format!(
                    "{what}: \"manifests\" is not an array"
                )));
            }
            None => return Err(Error::InvalidImage(format!("{what} has no \"manifests\""))),
        };
        let descriptor_annotations = &self.opts.manifest_descriptor;
        let docker = media::is_docker(media_type);
        for entry in entries.iter_mut() {
            let entry = entry
                .as_object_mut()
                .ok_or_else(|| Error::InvalidImage(format!("{what}: an entry is not an object")))?;
            let child_digest = str_field(entry, "digest", &what)?.to_owned();
            let child_type = str_field(entry, "mediaType", &what)?.to_owned();
            let attestation = entry
                .get("annotations")
                .and_then(|a| a.get(REFERENCE_TYPE))
                .is_some_and(|v| v == "attestation-manifest");
            let node = self.visit(&child_type, &child_digest, false, !attestation, depth + 1)?;
            if node.digest != child_digest {
                entry.insert("digest".into(), Value::String(node.digest));
                entry.insert("size".into(), Value::from(node.size));
                changed = true;
            }
            if media::is_manifest(&child_type) && !attestation && !descriptor_annotations.is_empty()
            {
                if docker {
                    return Err(Error::Unsupported(format!(
                        "cannot set manifest descriptor annotations in {what}: it is a docker \
                         manifest list, which has no annotations"
                    )));
                }
                set_annotations(entry, descriptor_annotations, &what)?;
                changed = true;
            }
        }
        if is_root && !self.opts.index.is_empty() {
            if docker {
                return Err(Error::Unsupported(format!(
                    "cannot set index annotations on {what}: it is a docker manifest list, \
                     which has no annotations"
                )));
            }
            set_annotations(obj, &self.opts.index, &what)?;
            changed = true;
        }
        if !changed {
            return Ok(blob);
        }
        put(media_type, &doc, &what)
    }
}

/// Reads and parses a small JSON blob.
fn parse(blob: &Blob, digest: &str) -> Result<Value, Error> {
    let bytes = blob.bytes()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidImage(format!("{digest} is not valid JSON: {e}")))
}

/// Stores a rewritten document as a new blob.
fn put(media_type: &str, doc: &Value, what: &str) -> Result<Blob, Error> {
    let bytes = serde_json::to_vec(doc)
        .map_err(|e| Error::Other(format!("serializing rewritten {what}: {e}")))?;
    let blob = image::put_blob(media_type, &bytes)?;
    host::log(
        Level::Debug,
        &format!(
            "rewrote {what} with annotations: now {}",
            blob.descriptor().digest
        ),
    );
    Ok(blob)
}

/// Sets `annotations` (existing keys keep their place, new ones are appended).
fn set_annotations(
    obj: &mut Map<String, Value>,
    ann: &[(String, String)],
    what: &str,
) -> Result<(), Error> {
    let slot = obj.entry("annotations").or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    let map = slot
        .as_object_mut()
        .ok_or_else(|| Error::InvalidImage(format!("{what}: \"annotations\" is not an object")))?;
    for (k, v) in ann {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(())
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, Error> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidImage(format!("{what}: a descriptor has no \"{key}\"")))
}
