//! Attaching attestation manifests: a copy of the image whose indexes list,
//! after each image manifest, the attestation manifest about it.

use std::collections::BTreeMap;

use outport_image::Image;
use outport_oci::document::{ImageConfig, Manifest as ReadManifest};
use outport_oci::media;
use serde::Serialize;
use serde_json::value::RawValue;

use super::statement::statement;
use super::{
    ANN_PREDICATE_TYPE, ATTESTATION_ARTIFACT_TYPE, ATTESTATION_MANIFEST, Attach, MT_IN_TOTO,
    PREDICATE_TYPE,
};
use crate::buildinfo::config::{
    ANN_REFERENCE_DIGEST, ANN_REFERENCE_TYPE, Entry, RawObject, platform_key, read_json_blob,
};
use crate::buildinfo::error::{Cause, Document, DocumentError};

const MT_OCI_INDEX: &str = media::OCI_INDEX;
const MT_OCI_MANIFEST: &str = media::OCI_MANIFEST;
const MT_OCI_CONFIG: &str = media::OCI_CONFIG;
const MT_OCI_EMPTY: &str = media::OCI_EMPTY;
/// The empty JSON object, the config of an OCI artifact.
const EMPTY_JSON: &[u8] = b"{}";
/// [`EMPTY_JSON`] in base64, the `data` of its descriptor.
const EMPTY_JSON_BASE64: &str = "e30=";

/// A copy of `input` with a provenance attestation manifest for each of
/// its image manifests, sharing every blob of `input`.
pub fn attach(input: &Image, plan: &Attach) -> Result<Image, DocumentError> {
    let mut walk = Walk {
        image: input.clone(),
        plan,
    };
    let root = input.root().clone();
    let entry = Entry::from_descriptor(&root);
    let media_type = entry.media_type.as_str();
    let new_root = if media::is_index(media_type) {
        match walk.visit_index(&entry, 0)? {
            Some(d) => with_annotations(d, &root),
            None => return Ok(input.clone()),
        }
    } else if media::is_manifest(media_type) {
        let Some((platform, attestation)) = walk.attest(&entry)? else {
            return Ok(input.clone());
        };
        let manifest = Descriptor {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: root.size(),
            annotations: None,
            data: None,
            platform: Some(platform),
        };
        let index = Index {
            schema_version: 2,
            media_type: MT_OCI_INDEX,
            manifests: vec![manifest, attestation],
        };
        let d = walk.image.insert_blob(MT_OCI_INDEX, to_json(&index));
        with_annotations(d, &root)
    } else {
        return Ok(input.clone());
    };
    walk.image.set_root(new_root);
    Ok(walk.image)
}

/// `new` with the annotations of `old` (the name annotations a layout's
/// `index.json` gave the root).
fn with_annotations(
    mut new: oci_spec::image::Descriptor,
    old: &oci_spec::image::Descriptor,
) -> oci_spec::image::Descriptor {
    new.set_annotations(old.annotations().clone());
    new
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings, numbers and maps always serialise.
    serde_json::to_vec(value).expect("a JSON document serialises")
}

/// An OCI descriptor, fields in the order Go (BuildKit) writes them.
#[derive(Serialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

impl Descriptor {
    fn of(d: &oci_spec::image::Descriptor) -> Descriptor {
        Descriptor {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size(),
            annotations: None,
            data: None,
            platform: None,
        }
    }
}

#[derive(Serialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
}

impl Platform {
    /// From `os/arch[/variant]`.
    fn parse(key: &str) -> Platform {
        let mut parts = key.splitn(3, '/');
        let os = parts.next().unwrap_or_default().to_string();
        let architecture = parts.next().unwrap_or_default().to_string();
        let variant = parts.next().unwrap_or_default().to_string();
        Platform {
            architecture,
            os,
            variant,
        }
    }
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'static str>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Descriptor>,
}

struct Walk<'a> {
    image: Image,
    plan: &'a Attach<'a>,
}

impl Walk<'_> {
    fn read(&self, document: Document, digest: &str) -> Result<Vec<u8>, DocumentError> {
        read_json_blob(&self.image, document, digest)
    }

    /// Adds attestations to the index `entry` points at (and to the indexes
    /// it holds); its new descriptor, or `None` when nothing was attested.
    fn visit_index(
        &mut self,
        entry: &Entry,
        depth: usize,
    ) -> Result<Option<oci_spec::image::Descriptor>, DocumentError> {
        if depth > 8 {
            return Err(DocumentError::new(
                Document::Index,
                &entry.digest,
                Cause::TooDeep,
            ));
        }
        let what = |e: serde_json::Error| DocumentError::new(Document::Index, &entry.digest, e);
        let bytes = self.read(Document::Index, &entry.digest)?;
        let mut index = RawObject::parse(&bytes).map_err(what)?;
        let Some(children) = index.get::<Vec<RawObject>>("manifests") else {
            return Ok(None);
        };
        let mut kept: Vec<Box<RawValue>> = Vec::with_capacity(children.len() * 2);
        let mut added: Vec<Box<RawValue>> = Vec::new();
        let mut existing: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut attested: Vec<String> = Vec::new();
        let mut changed = false;
        for mut child in children {
            let child_entry = Entry::from_raw(&child);
            let raw = |c: &RawObject| c.to_raw().map_err(what);
            if child_entry
                .annotations
                .get(ANN_REFERENCE_TYPE)
                .map(String::as_str)
                == Some(ATTESTATION_MANIFEST)
            {
                let subject = child_entry
                    .annotations
                    .get(ANN_REFERENCE_DIGEST)
                    .cloned()
                    .unwrap_or_default();
                let keep = if self.is_provenance_only(&child_entry.digest) {
                    subject
                } else {
                    String::new()
                };
                existing.push((keep, raw(&child)?));
                continue;
            }
            if media::is_index(&child_entry.media_type) {
                if let Some(d) = self.visit_index(&child_entry, depth + 1)? {
                    changed = true;
                    child.set("digest", &d.digest().to_string());
                    child.set("size", &d.size());
                }
            } else if media::is_manifest(&child_entry.media_type)
                && let Some((_, attestation)) = self.attest(&child_entry)?
            {
                attested.push(child_entry.digest.clone());
                added.push(serde_json::value::to_raw_value(&attestation).map_err(what)?);
            }
            kept.push(raw(&child)?);
        }
        if added.is_empty() && !changed {
            return Ok(None);
        }
        // Existing attestations stay (after the image manifests, as
        // BuildKit orders them), but not the provenance we replace.
        kept.extend(
            existing
                .into_iter()
                .filter(|(subject, _)| subject.is_empty() || !attested.contains(subject))
                .map(|(_, raw)| raw),
        );
        kept.extend(added);
        index.set("manifests", &kept);
        Ok(Some(
            self.image.insert_blob(&entry.media_type, index.to_vec()),
        ))
    }

    /// Whether the attestation manifest `digest` holds provenance only.
    fn is_provenance_only(&self, digest: &str) -> bool {
        let Ok(bytes) = self.read(Document::Manifest, digest) else {
            return false;
        };
        let Ok(manifest) = serde_json::from_slice::<ReadManifest>(&bytes) else {
            return false;
        };
        !manifest.layers.is_empty()
            && manifest.layers.iter().all(|l| {
                l.annotation(ANN_PREDICATE_TYPE)
                    .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"))
            })
    }

    /// Makes the attestation manifest of the image manifest `entry` points
    /// at; its platform and its index entry. `None` for a manifest that is
    /// not an image's (no image config).
    fn attest(&mut self, entry: &Entry) -> Result<Option<(Platform, Descriptor)>, DocumentError> {
        let what = |e: serde_json::Error| DocumentError::new(Document::Manifest, &entry.digest, e);
        let manifest_bytes = self.read(Document::Manifest, &entry.digest)?;
        let manifest = RawObject::parse(&manifest_bytes).map_err(what)?;
        let Some(config) = manifest.get::<RawObject>("config") else {
            return Ok(None);
        };
        let config = Entry::from_raw(&config);
        if !media::is_config(&config.media_type) {
            return Ok(None);
        }
        let image_config: ImageConfig =
            serde_json::from_slice(&self.read(Document::Config, &config.digest)?)
                .unwrap_or_default();
        let platform = platform_key(entry.platform.as_ref(), &image_config);
        let info = self
            .plan
            .infos
            .get(&entry.digest)
            .cloned()
            .unwrap_or_default();
        let statement = statement(self.plan, &entry.digest, &platform, &info);

        let layer = self.image.insert_blob(MT_IN_TOTO, to_json(&statement));
        let subject = Descriptor {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: manifest_bytes.len() as u64,
            annotations: None,
            data: None,
            platform: None,
        };
        let attestation = self.attestation_manifest(&layer, subject);
        let manifest = self
            .image
            .insert_blob(MT_OCI_MANIFEST, to_json(&attestation));
        let mut index_entry = Descriptor::of(&manifest);
        index_entry.annotations = Some(BTreeMap::from([
            (ANN_REFERENCE_DIGEST.to_string(), entry.digest.clone()),
            (
                ANN_REFERENCE_TYPE.to_string(),
                ATTESTATION_MANIFEST.to_string(),
            ),
        ]));
        index_entry.platform = Some(Platform::parse("unknown/unknown"));
        Ok(Some((Platform::parse(&platform), index_entry)))
    }

    /// The attestation manifest holding the statement `layer` about
    /// `subject`: an OCI artifact (`oci-artifact=true`) or an image
    /// manifest with an `unknown/unknown` config.
    fn attestation_manifest(
        &mut self,
        layer: &oci_spec::image::Descriptor,
        subject: Descriptor,
    ) -> Manifest {
        let mut layer_entry = Descriptor::of(layer);
        layer_entry.annotations = Some(BTreeMap::from([(
            ANN_PREDICATE_TYPE.to_string(),
            PREDICATE_TYPE.to_string(),
        )]));
        if self.plan.oci_artifact {
            // An OCI artifact: the empty config, the artifact type and
            // the subject it is about.
            let config = self.image.insert_blob(MT_OCI_EMPTY, EMPTY_JSON.to_vec());
            let mut config = Descriptor::of(&config);
            config.data = Some(EMPTY_JSON_BASE64);
            Manifest {
                schema_version: 2,
                media_type: MT_OCI_MANIFEST,
                artifact_type: Some(ATTESTATION_ARTIFACT_TYPE),
                config,
                layers: vec![layer_entry],
                subject: Some(subject),
            }
        } else {
            // BuildKit's attestation image config, in Go's field order.
            let image_config = format!(
                r#"{{"architecture":"unknown","os":"unknown","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
                layer.digest()
            );
            let config = self
                .image
                .insert_blob(MT_OCI_CONFIG, image_config.into_bytes());
            Manifest {
                schema_version: 2,
                media_type: MT_OCI_MANIFEST,
                artifact_type: None,
                config: Descriptor::of(&config),
                layers: vec![layer_entry],
                subject: None,
            }
        }
    }
}
