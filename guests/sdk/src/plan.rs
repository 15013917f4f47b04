//! A [`Plan`]: walks the image from a root, applies annotation rewrites, and
//! lists the blobs to write, in walk order, each once.
//!
//! Without annotation options nothing is rewritten: the blobs are the input's
//! and the root digest is unchanged. With them, each changed manifest or
//! index is re-serialized (all other fields kept, in their order) and handed
//! to the host with `image::put-blob`, which computes the new digest; parents
//! then point to the new descriptors.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::{Descriptor, Error};
use crate::walk::{MAX_DEPTH, is_attestation, read_json, str_field};
use crate::{log, media};

/// Annotation of an `index.json` entry naming the image in full
/// (`docker.io/library/alpine:latest`); exporters set it from `name=` and
/// drop the input's.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation of an `index.json` entry naming the image by its tag only.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Annotations to set while walking (BuildKit's `annotation*` options), each
/// list in the order the user gave them.
#[derive(Debug, Default, Clone)]
pub struct Rewrites {
    /// Set in every image manifest (attestation manifests excepted).
    pub manifest: Vec<(String, String)>,
    /// Set in the root index (an error when the root is a manifest).
    pub index: Vec<(String, String)>,
    /// Set on the descriptors of image manifests in an index, or on the root
    /// descriptor when the root is a manifest.
    pub manifest_descriptor: Vec<(String, String)>,
    /// Set on the root descriptor (the image's `index.json` entries).
    pub index_descriptor: Vec<(String, String)>,
}

/// The exported image's root descriptor, after rewriting.
#[derive(Debug, Clone)]
pub struct Root {
    /// Media type (an index or a manifest).
    pub media_type: String,
    /// Digest, new when the root was rewritten.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Descriptor annotations (without image names), sorted by key, as Go
    /// marshals a map.
    pub annotations: BTreeMap<String, String>,
    /// Artifact type, for artifact manifests.
    pub artifact_type: Option<String>,
}

/// What to write: the root and every blob reachable from it.
pub struct Plan {
    /// The root descriptor.
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
    opts: &'a Rewrites,
    /// Slots in walk order; a parent reserves its slot before its children.
    slots: Vec<Option<Blob>>,
    visited: BTreeMap<String, Node>,
}

impl Plan {
    /// Walks the whole image (from `image::root`) and plans the output.
    pub fn image(rewrites: &Rewrites) -> Result<Plan, Error> {
        plan(image::root(), rewrites)
    }

    /// Walks the image from `root` (for example one manifest of an index,
    /// chosen with [`crate::walk::find_platform`]) and plans the output.
    pub fn from_root(root: Descriptor, rewrites: &Rewrites) -> Result<Plan, Error> {
        plan(root, rewrites)
    }
}

fn plan(input_root: Descriptor, opts: &Rewrites) -> Result<Plan, Error> {
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
                log::debug(&format!(
                    "skipping foreign layer {digest} (not in the image)"
                ));
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
        let mut doc = read_json(&blob, digest)?;
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
        let mut doc = read_json(&blob, digest)?;
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
            let attestation = is_attestation(entry);
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

/// Stores a rewritten document as a new blob.
fn put(media_type: &str, doc: &Value, what: &str) -> Result<Blob, Error> {
    let bytes = serde_json::to_vec(doc)
        .map_err(|e| Error::Other(format!("serializing rewritten {what}: {e}")))?;
    let blob = image::put_blob(media_type, &bytes)?;
    log::debug(&format!(
        "rewrote {what} with annotations: now {}",
        blob.descriptor().digest
    ));
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
