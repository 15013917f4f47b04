//! Reading the image's JSON documents: an index's image manifests with
//! their platforms ([`image_manifests`], through nested indexes, skipping
//! attestations), a manifest's config and layers ([`read_manifest`]), and
//! choosing one platform ([`find_platform`]). Documents that are only read
//! are read typed ([`outport_oci::document`]); [`read_json`], [`str_field`]
//! and [`is_attestation`] serve code that rewrites one (the plan).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::{self, Descriptor, Error};
use crate::media;
use crate::platform::Platform;
use outport_oci::document::{self, ATTESTATION_MANIFEST, ImageConfig, Index, Manifest};

/// BuildKit marks the attestation manifests of an index with this annotation
/// (value `attestation-manifest`).
pub const REFERENCE_TYPE: &str = document::REFERENCE_TYPE;

/// How deep indexes may nest.
pub(crate) const MAX_DEPTH: usize = 8;

/// One image manifest of the image, with the platform it is built for.
#[derive(Debug, Clone)]
pub struct ImageManifest {
    /// The manifest's descriptor, as its index lists it (or the root).
    pub descriptor: Descriptor,
    /// Its platform: from the index entry, else from its config.
    pub platform: Option<Platform>,
}

/// A manifest's config and layer digests, in order.
#[derive(Debug, Clone)]
pub struct ManifestBlobs {
    /// The config's digest.
    pub config: String,
    /// The layers' digests, base layer first.
    pub layers: Vec<String>,
}

/// Reads and parses a small JSON blob; `what` names it in errors.
pub fn read_json(blob: &Blob, what: &str) -> Result<Value, Error> {
    let bytes = blob.bytes()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidImage(format!("{what} is not valid JSON: {e}")))
}

/// Reads a small JSON blob as the typed document `T` ([`Index`],
/// [`Manifest`], [`ImageConfig`]); `what` names it in errors.
pub fn read_document<T: DeserializeOwned>(blob: &Blob, what: &str) -> Result<T, Error> {
    // Through a `Value`: its deserializer is smaller in a component than
    // the typed paths of the text parser.
    let value = read_json(blob, what)?;
    T::deserialize(&value).map_err(|e| Error::InvalidImage(format!("{what}: {e}")))
}

/// The string field `key` of a JSON descriptor in `what`.
pub fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a str, Error> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidImage(format!("{what}: a descriptor has no \"{key}\"")))
}

/// Whether an index entry is a BuildKit attestation manifest.
pub fn is_attestation(entry: &Map<String, Value>) -> bool {
    entry
        .get("annotations")
        .and_then(|a| a.get(REFERENCE_TYPE))
        .is_some_and(|v| v == ATTESTATION_MANIFEST)
}

/// Every image manifest reachable from `root` (itself when it is a
/// manifest), in index order, attestation manifests left out.
pub fn image_manifests(root: &Descriptor) -> Result<Vec<ImageManifest>, Error> {
    let mut out = Vec::new();
    if media::is_index(&root.media_type) {
        collect(&root.digest, &mut out, 0)?;
    } else if media::is_manifest(&root.media_type) {
        let platform = config_platform(&root.digest)?;
        out.push(ImageManifest {
            descriptor: root.clone(),
            platform,
        });
    } else {
        return Err(Error::Unsupported(format!(
            "the image's root {} has media type {}, neither an index nor a manifest",
            root.digest, root.media_type
        )));
    }
    Ok(out)
}

fn collect(index_digest: &str, out: &mut Vec<ImageManifest>, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidImage(format!(
            "indexes nest deeper than {MAX_DEPTH} levels at {index_digest}"
        )));
    }
    let what = format!("index {index_digest}");
    let index: Index = read_document(&image::get_blob(index_digest)?, &what)?;
    for entry in index.manifests {
        if media::is_index(&entry.media_type) {
            collect(&entry.digest, out, depth + 1)?;
        } else if media::is_manifest(&entry.media_type) && !entry.is_attestation() {
            let platform = match entry.platform.as_ref().and_then(Platform::from_document) {
                Some(p) => Some(p),
                None => config_platform(&entry.digest)?,
            };
            out.push(ImageManifest {
                descriptor: contract_descriptor(entry),
                platform,
            });
        }
    }
    Ok(())
}

/// Reads the manifest `digest`: its config and layer digests.
pub fn read_manifest(digest: &str) -> Result<ManifestBlobs, Error> {
    let what = format!("manifest {digest}");
    let manifest: Manifest = read_document(&image::get_blob(digest)?, &what)?;
    Ok(ManifestBlobs {
        config: manifest.config.digest,
        layers: manifest.layers.into_iter().map(|l| l.digest).collect(),
    })
}

/// The platform recorded in the config of manifest `digest`.
fn config_platform(digest: &str) -> Result<Option<Platform>, Error> {
    let manifest = read_manifest(digest)?;
    let config: ImageConfig = read_document(
        &image::get_blob(&manifest.config)?,
        &format!("config {}", manifest.config),
    )?;
    Ok(Platform::from_document(&config.platform))
}

/// A descriptor of the contract from a descriptor read from a document.
pub fn contract_descriptor(read: document::Descriptor) -> Descriptor {
    let platform = read.platform.and_then(|p| {
        let parsed = Platform::from_document(&p)?;
        Some(types::Platform {
            architecture: parsed.architecture,
            os: parsed.os,
            os_version: p.os_version,
            os_features: p.os_features,
            variant: parsed.variant,
        })
    });
    Descriptor {
        media_type: read.media_type,
        digest: read.digest,
        size: read.size,
        annotations: read.annotations,
        platform,
        artifact_type: read.artifact_type,
        urls: read.urls,
    }
}

/// The manifest built for `wanted` (compared normalized: `linux/arm64`
/// matches `linux/arm64/v8`), if the image has one.
pub fn find_platform<'a>(
    manifests: &'a [ImageManifest],
    wanted: &Platform,
) -> Option<&'a ImageManifest> {
    manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(wanted)))
}

/// The platforms of `manifests`, comma-separated, for messages
/// (`linux/amd64, linux/arm64/v8`); `unknown` for a manifest without one.
pub fn platform_list(manifests: &[ImageManifest]) -> String {
    manifests
        .iter()
        .map(|m| {
            m.platform
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), Platform::to_string)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
