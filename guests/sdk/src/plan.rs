//! A [`Plan`]: walks the image from a root, applies annotation rewrites, and
//! lists the blobs to write, in walk order, each once.
//!
//! Without annotation, layer or media type options nothing is rewritten: the
//! blobs are the input's and the root digest is unchanged. With them, each
//! changed manifest, config or index is re-serialized (all other fields
//! kept, in their order) and handed to the host with `image::put-blob`,
//! which computes the new digest; parents then point to the new
//! descriptors. Layers are converted by the host (`image::convert-layers`:
//! compression, timestamps), never in the guest; a config then gets the new
//! `rootfs.diff_ids`, and with a source date epoch its `created` times are
//! clamped to it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::bindings::outport::exporter::image::{self, Blob, ConvertOptions};
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
    /// Layer conversion the host makes for every image manifest's layers
    /// (attestations excepted); none: layers as they are.
    pub layers: Option<ConvertOptions>,
    /// Write OCI (true) or docker (false) media types; none: the input's.
    pub oci_media_types: Option<bool>,
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
    media_type: String,
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
            media_type: node.media_type,
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
        let (blob, media_type, config_digest) = if media::is_index(media_type) {
            let (blob, media_type) = self.index(blob, media_type, digest, is_root, depth)?;
            (blob, media_type, None)
        } else if media::is_manifest(media_type) {
            self.manifest(blob, media_type, digest, annotate)?
        } else {
            (blob, media_type.to_owned(), None)
        };
        let desc = blob.descriptor();
        let node = Node {
            media_type,
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
        self.add_leaf(digest, blob);
        Ok(())
    }

    /// Records `blob` as what `digest` became, to be written.
    fn add_leaf(&mut self, digest: &str, blob: Blob) {
        let d = blob.descriptor();
        self.visited.insert(
            digest.to_owned(),
            Node {
                media_type: d.media_type,
                digest: d.digest,
                size: d.size,
                config_digest: None,
            },
        );
        self.slots.push(Some(blob));
    }

    /// The media type `media_type` should have in the output: the family
    /// asked by `oci-mediatypes`, else its own.
    fn target_type(&self, media_type: &str, what: &str) -> Result<String, Error> {
        match self.opts.oci_media_types {
            None => Ok(media_type.to_owned()),
            Some(oci) => media::convert(media_type, oci)
                .map(str::to_owned)
                .map_err(|e| Error::Unsupported(format!("{what}: {e}"))),
        }
    }

    fn manifest(
        &mut self,
        blob: Blob,
        media_type: &str,
        digest: &str,
        annotate: bool,
    ) -> Result<(Blob, String, Option<String>), Error> {
        let mut doc = read_json(&blob, digest)?;
        let what = format!("manifest {digest}");
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what} is not a JSON object")))?;
        if !annotate && self.opts.oci_media_types == Some(false) {
            return Err(Error::Unsupported(format!(
                "option \"oci-mediatypes=false\": the image has attestation manifest {digest}, \
                 which needs OCI media types"
            )));
        }
        let target = if annotate {
            self.target_type(media_type, &what)?
        } else {
            media_type.to_owned()
        };
        let mut changed = target != media_type;
        // The config's slot comes before the layers'; it is filled once
        // the layers say whether the config changes.
        let config_slot = self.slots.len();
        self.slots.push(None);
        let config = obj
            .get("config")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?;
        let config_digest = str_field(config, "digest", &what)?.to_owned();
        let config_type = str_field(config, "mediaType", &what)?.to_owned();
        let diff_ids = match obj.get_mut("layers") {
            None => Vec::new(),
            Some(layers) => {
                let layers = layers.as_array_mut().ok_or_else(|| {
                    Error::InvalidImage(format!("{what}: \"layers\" is not an array"))
                })?;
                let convert = self.opts.layers.filter(|_| annotate);
                let docker = media::is_docker(&target);
                let (diff_ids, layers_changed) = self.layers(layers, convert, docker, &what)?;
                changed |= layers_changed;
                diff_ids
            }
        };
        let epoch = self
            .opts
            .layers
            .and_then(|l| l.rewrite_timestamp)
            .filter(|_| annotate);
        let new_config = self.config(&config_digest, &diff_ids, epoch)?;
        let config = obj
            .get_mut("config")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?;
        let new_config_digest = match new_config {
            Some(new) => {
                let d = new.descriptor();
                config.insert("digest".into(), Value::String(d.digest.clone()));
                config.insert("size".into(), Value::from(d.size));
                self.slots[config_slot] = Some(new);
                changed = true;
                d.digest
            }
            None => {
                if !self.visited.contains_key(&config_digest) {
                    let blob = image::get_blob(&config_digest)?;
                    self.visited.insert(
                        config_digest.clone(),
                        Node {
                            media_type: config_type.clone(),
                            digest: config_digest.clone(),
                            size: blob.descriptor().size,
                            config_digest: None,
                        },
                    );
                    self.slots[config_slot] = Some(blob);
                }
                config_digest
            }
        };
        if annotate {
            let new_type = self.target_type(&config_type, &what)?;
            if new_type != config_type {
                config.insert("mediaType".into(), Value::String(new_type));
                changed = true;
            }
        }
        if target != media_type {
            obj.insert("mediaType".into(), Value::String(target.clone()));
            if media::is_docker(&target) && obj.remove("annotations").is_some() {
                log::info(&format!(
                    "{what}: its annotations are dropped (docker media types have none)"
                ));
            }
        }
        if annotate && !self.opts.manifest.is_empty() {
            if media::is_docker(&target) {
                return Err(Error::Unsupported(format!(
                    "cannot set manifest annotations on {what}: it has docker media type \
                     {target}, which has no annotations"
                )));
            }
            set_annotations(obj, &self.opts.manifest, &what)?;
            changed = true;
        }
        if !changed {
            return Ok((blob, target, Some(new_config_digest)));
        }
        let new = put(&target, &doc, &what)?;
        Ok((new, target, Some(new_config_digest)))
    }

    /// The layers of a manifest: converted by the host when `convert` says
    /// so, their media types set for the manifest's family (`docker`).
    /// Returns the new diff IDs by layer (none: unchanged) and whether a
    /// descriptor changed.
    fn layers(
        &mut self,
        layers: &mut [Value],
        convert: Option<ConvertOptions>,
        docker: bool,
        what: &str,
    ) -> Result<(Vec<Option<String>>, bool), Error> {
        let mut diff_ids = vec![None; layers.len()];
        let mut changed = false;
        let mut to_convert = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let layer = layer
                .as_object()
                .ok_or_else(|| Error::InvalidImage(format!("{what}: a layer is not an object")))?;
            let media_type = str_field(layer, "mediaType", what)?;
            if convert.is_some() && media::is_convertible_layer(media_type) {
                let digest = str_field(layer, "digest", what)?;
                to_convert.push((i, digest.to_owned(), image::get_blob(digest)?));
            } else {
                self.leaf(layer, what)?;
            }
        }
        if let Some(options) = convert.filter(|_| !to_convert.is_empty()) {
            let handles: Vec<&Blob> = to_convert.iter().map(|(_, _, b)| b).collect();
            let results = image::convert_layers(&handles, options)?;
            for ((i, digest, old), result) in to_convert.into_iter().zip(results) {
                let Some(converted) = result else {
                    if !self.visited.contains_key(&digest) {
                        self.add_leaf(&digest, old);
                    }
                    continue;
                };
                let d = converted.blob.descriptor();
                // The host gives OCI types; a docker manifest needs docker's.
                let media_type = media::convert(&d.media_type, !docker)
                    .map_err(|e| Error::Unsupported(format!("{what}: {e}")))?
                    .to_owned();
                if let Some(layer) = layers[i].as_object_mut() {
                    layer.insert("mediaType".into(), Value::String(media_type));
                    layer.insert("digest".into(), Value::String(d.digest.clone()));
                    layer.insert("size".into(), Value::from(d.size));
                }
                log::debug(&format!(
                    "{what}: layer {digest} converted to {} ({})",
                    d.digest, d.media_type
                ));
                diff_ids[i] = Some(converted.diff_id);
                self.add_leaf(&d.digest, converted.blob);
                changed = true;
            }
        }
        if convert.is_none() && self.opts.oci_media_types.is_none() {
            return Ok((diff_ids, changed));
        }
        for layer in layers.iter_mut().filter_map(Value::as_object_mut) {
            let Some(media_type) = layer.get("mediaType").and_then(Value::as_str) else {
                continue;
            };
            let new = media::convert(media_type, !docker)
                .map_err(|e| Error::Unsupported(format!("{what}: {e}")))?;
            if new != media_type {
                let new = new.to_owned();
                layer.insert("mediaType".into(), Value::String(new));
                changed = true;
            }
        }
        Ok((diff_ids, changed))
    }

    /// The config `digest` with the new `diff_ids` and, with an `epoch`,
    /// its `created` times clamped; none when nothing changes.
    fn config(
        &mut self,
        digest: &str,
        diff_ids: &[Option<String>],
        epoch: Option<u64>,
    ) -> Result<Option<Blob>, Error> {
        if epoch.is_none() && diff_ids.iter().all(Option::is_none) {
            return Ok(None);
        }
        let blob = image::get_blob(digest)?;
        let what = format!("config {digest}");
        let mut doc = read_json(&blob, &what)?;
        let mut changed = false;
        if let Some(ids) = doc
            .pointer_mut("/rootfs/diff_ids")
            .and_then(Value::as_array_mut)
        {
            for (id, new) in ids.iter_mut().zip(diff_ids) {
                if let Some(new) = new
                    && id.as_str() != Some(new)
                {
                    *id = Value::String(new.clone());
                    changed = true;
                }
            }
        }
        if let Some(epoch) = epoch {
            changed |= clamp_created(&mut doc, epoch, &what)?;
        }
        if !changed {
            return Ok(None);
        }
        put(&blob.descriptor().media_type, &doc, &what).map(Some)
    }

    fn index(
        &mut self,
        blob: Blob,
        media_type: &str,
        digest: &str,
        is_root: bool,
        depth: usize,
    ) -> Result<(Blob, String), Error> {
        let mut doc = read_json(&blob, digest)?;
        let what = format!("index {digest}");
        let obj = doc
            .as_object_mut()
            .ok_or_else(|| Error::InvalidImage(format!("{what} is not a JSON object")))?;
        let target = self.target_type(media_type, &what)?;
        let mut changed = target != media_type;
        if changed {
            obj.insert("mediaType".into(), Value::String(target.clone()));
        }
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
        let docker = media::is_docker(&target);
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
            if node.media_type != child_type {
                entry.insert("mediaType".into(), Value::String(node.media_type));
                changed = true;
            }
            if docker && entry.remove("annotations").is_some() {
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
        if docker && obj.remove("annotations").is_some() {
            changed = true;
        }
        if !changed {
            return Ok((blob, target));
        }
        Ok((put(&target, &doc, &what)?, target))
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

/// Clamps the config's `created` and its history's `created` times to
/// `epoch`; returns whether anything changed.
fn clamp_created(doc: &mut Value, epoch: u64, what: &str) -> Result<bool, Error> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let limit = i64::try_from(epoch)
        .ok()
        .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
        .ok_or_else(|| {
            Error::InvalidOption(format!("source date epoch {epoch} is out of range"))
        })?;
    let formatted = limit
        .format(&Rfc3339)
        .map_err(|e| Error::Other(format!("formatting the source date epoch: {e}")))?;
    let mut changed = false;
    let mut clamp = |slot: Option<&mut Value>| -> Result<(), Error> {
        let Some(slot) = slot else { return Ok(()) };
        let Some(text) = slot.as_str() else {
            return Ok(());
        };
        let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            Error::InvalidImage(format!(
                "{what}: created time {text:?} is not RFC 3339: {e}"
            ))
        })?;
        if time > limit {
            *slot = Value::String(formatted.clone());
            changed = true;
        }
        Ok(())
    };
    clamp(doc.get_mut("created"))?;
    if let Some(history) = doc.get_mut("history").and_then(Value::as_array_mut) {
        for entry in history {
            clamp(entry.get_mut("created"))?;
        }
    }
    Ok(changed)
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
