//! BuildKit attestation manifests, in both of BuildKit's forms (an image
//! manifest or an OCI artifact): which image manifest each describes
//! (`vnd.docker.reference.digest`, else the artifact's `subject`), and the
//! SLSA provenance statement in it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::bindings::outport::exporter::image;
use crate::bindings::outport::exporter::types::{Descriptor, Error};
use crate::media;
use crate::walk::{MAX_DEPTH, read_document};
use outport_oci::document::{Index, Manifest, REFERENCE_DIGEST};

/// The annotation of a statement layer giving its predicate type.
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// The SLSA provenance predicate types BuildKit writes.
const SLSA: &[&str] = &[
    "https://slsa.dev/provenance/v1",
    "https://slsa.dev/provenance/v0.2",
];

/// Image manifest digest → the digest of the attestation manifest about it.
pub fn attestation_map(root: &Descriptor) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    if media::is_index(&root.media_type) {
        collect(&root.digest, &mut out, 0)?;
    }
    Ok(out)
}

fn collect(index: &str, out: &mut BTreeMap<String, String>, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidImage(format!(
            "indexes nest deeper than {MAX_DEPTH} levels at {index}"
        )));
    }
    let what = format!("index {index}");
    let doc: Index = read_document(&image::get_blob(index)?, &what)?;
    for entry in doc.manifests {
        if entry.is_attestation() {
            let subject = match entry.annotation(REFERENCE_DIGEST) {
                Some(subject) => Some(subject.to_owned()),
                None => subject_of(&entry.digest)?,
            };
            if let Some(subject) = subject {
                out.insert(subject, entry.digest.clone());
            }
        } else if media::is_index(&entry.media_type) {
            collect(&entry.digest, out, depth + 1)?;
        }
    }
    Ok(())
}

/// The `subject` of the attestation artifact `digest`, if it has one.
fn subject_of(digest: &str) -> Result<Option<String>, Error> {
    let what = format!("attestation manifest {digest}");
    let doc: Manifest = read_document(&image::get_blob(digest)?, &what)?;
    Ok(doc.subject.map(|s| s.digest))
}

/// The SLSA provenance statement of attestation manifest `digest`, if it
/// has one (the first, when several).
pub fn statement(digest: &str) -> Result<Option<Vec<u8>>, Error> {
    let what = format!("attestation manifest {digest}");
    let doc: Manifest = read_document(&image::get_blob(digest)?, &what)?;
    for layer in doc.layers {
        if layer.media_type != media::IN_TOTO {
            continue;
        }
        let annotated = layer.annotation(PREDICATE_TYPE);
        if annotated.is_some_and(|t| !SLSA.contains(&t)) {
            continue;
        }
        let bytes = image::get_blob(&layer.digest)?.bytes()?;
        let predicate = match annotated {
            Some(t) => Some(t.to_owned()),
            None => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["predicateType"].as_str().map(str::to_owned)),
        };
        if predicate.is_some_and(|t| SLSA.contains(&t.as_str())) {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}
