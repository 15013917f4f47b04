//! Rewriting an index: its entries pointed to what their manifests became
//! (image manifests first, then the attestations that name them), its media
//! type and annotations set.

use serde_json::{Map, Value};

use super::edit::{put, set_annotations};
use super::subjects::refers;
use super::walker::Walker;
use crate::bindings::outport::exporter::image::Blob;
use crate::bindings::outport::exporter::types::Error;
use crate::media;
use crate::walk::{is_attestation, read_json, str_field};

impl Walker<'_> {
    /// Visits index `digest` (its blob `blob`, of type `media_type`) and
    /// its children. Returns the index's blob (new when anything changed)
    /// and its media type.
    pub(super) fn index(
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
        let docker = media::is_docker(&target);
        // Image manifests first: what refers to them follows what they become.
        for referrers in [false, true] {
            for entry in entries.iter_mut().filter(|e| refers(e) == referrers) {
                let entry = entry.as_object_mut().ok_or_else(|| {
                    Error::InvalidImage(format!("{what}: an entry is not an object"))
                })?;
                changed |= self.index_entry(entry, docker, depth, &what)?;
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

    /// Visits the child of one entry of index `what` (a `docker` manifest
    /// list or not) and points the entry to what it became, with the asked
    /// descriptor annotations. Returns whether the entry changed.
    fn index_entry(
        &mut self,
        entry: &mut Map<String, Value>,
        docker: bool,
        depth: usize,
        what: &str,
    ) -> Result<bool, Error> {
        let child_digest = str_field(entry, "digest", what)?.to_owned();
        let child_type = str_field(entry, "mediaType", what)?.to_owned();
        let attestation = is_attestation(entry);
        let node = self.visit(&child_type, &child_digest, false, !attestation, depth + 1)?;
        let mut changed = false;
        if node.digest != child_digest {
            entry.insert("digest".into(), Value::String(node.digest));
            entry.insert("size".into(), Value::from(node.size));
            changed = true;
        }
        if node.media_type != child_type {
            entry.insert("mediaType".into(), Value::String(node.media_type));
            changed = true;
        }
        if attestation {
            changed |= self.follow_reference(entry);
        }
        if docker && entry.remove("annotations").is_some() {
            changed = true;
        }
        let descriptor_annotations = &self.opts.manifest_descriptor;
        if media::is_manifest(&child_type) && !attestation && !descriptor_annotations.is_empty() {
            if docker {
                return Err(Error::Unsupported(format!(
                    "cannot set manifest descriptor annotations in {what}: it is a docker \
                     manifest list, which has no annotations"
                )));
            }
            set_annotations(entry, descriptor_annotations, what)?;
            changed = true;
        }
        Ok(changed)
    }
}
