//! Attestations follow their subjects. When an image manifest is rewritten
//! (layers converted, media types or annotations changed), what names it
//! is pointed at the manifest written: an index entry's
//! `vnd.docker.reference.digest`, an artifact's `subject`, and the subject
//! of each in-toto statement, as BuildKit, which attests the manifest it
//! exports. An index's image manifests are visited before the manifests
//! that refer to them (see `index`), so what each became is known.

use serde_json::{Map, Value};

use super::edit::put;
use super::walker::{Node, Walker};
use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::Error;
use crate::media;
use crate::oci::document::REFERENCE_DIGEST;
use crate::walk::{read_json, str_field};

impl Walker<'_> {
    /// What the manifest `digest` became, when it was visited and is not
    /// the same any more.
    fn moved(&self, digest: &str) -> Option<Node> {
        self.visited
            .get(digest)
            .filter(|node| node.digest != digest)
            .cloned()
    }

    /// Points the `vnd.docker.reference.digest` of index entry `entry` at
    /// what it names became; returns whether it changed.
    pub(super) fn follow_reference(&self, entry: &mut Map<String, Value>) -> bool {
        let Some(annotations) = entry.get_mut("annotations").and_then(Value::as_object_mut) else {
            return false;
        };
        let Some(node) = annotations
            .get(REFERENCE_DIGEST)
            .and_then(Value::as_str)
            .and_then(|old| self.moved(old))
        else {
            return false;
        };
        annotations.insert(REFERENCE_DIGEST.into(), Value::String(node.digest));
        true
    }

    /// Points the `subject` of manifest `obj` at what it names became;
    /// returns whether it changed.
    pub(super) fn follow_subject(&self, obj: &mut Map<String, Value>) -> bool {
        let Some(subject) = obj.get_mut("subject").and_then(Value::as_object_mut) else {
            return false;
        };
        let Some(node) = subject
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|old| self.moved(old))
        else {
            return false;
        };
        subject.insert("mediaType".into(), Value::String(node.media_type));
        subject.insert("digest".into(), Value::String(node.digest));
        subject.insert("size".into(), Value::from(node.size));
        true
    }

    /// The in-toto statement of layer `layer` (of manifest `what`) with its
    /// subjects pointed at what they became, as a new blob; none when no
    /// subject moved (or the layer is not a statement).
    pub(super) fn follow_statement(
        &self,
        layer: &Map<String, Value>,
        what: &str,
    ) -> Result<Option<Blob>, Error> {
        let media_type = str_field(layer, "mediaType", what)?;
        if media_type != media::IN_TOTO {
            return Ok(None);
        }
        let digest = str_field(layer, "digest", what)?;
        let blob = image::get_blob(digest)?;
        let statement = format!("in-toto statement {digest}");
        let mut doc = read_json(&blob, &statement)?;
        let mut changed = false;
        let subjects = doc
            .get_mut("subject")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for subject in subjects {
            let Some(hex) = subject.pointer("/digest/sha256").and_then(Value::as_str) else {
                continue;
            };
            let Some(node) = self.moved(&format!("sha256:{hex}")) else {
                continue;
            };
            if let Some(slot) = subject.pointer_mut("/digest/sha256") {
                let new = node.digest.trim_start_matches("sha256:");
                *slot = Value::String(new.to_owned());
                changed = true;
            }
        }
        if !changed {
            return Ok(None);
        }
        put(media_type, &doc, &statement).map(Some)
    }
}

/// Whether index entry `entry` refers to another manifest (an attestation,
/// an artifact), so is visited after the image manifests.
pub(super) fn refers(entry: &Value) -> bool {
    entry
        .as_object()
        .is_some_and(|e| crate::walk::is_attestation(e) || e.contains_key("artifactType"))
}
