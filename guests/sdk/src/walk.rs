//! Reading the image's JSON documents: an index's image manifests with
//! their platforms ([`image_manifests`], through nested indexes, skipping
//! attestations), a manifest's config and layers ([`read_manifest`]), and
//! choosing one platform ([`find_platform`]).

use serde_json::{Map, Value};

use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::{self, Descriptor, Error};
use crate::media;
use crate::platform::Platform;

/// BuildKit marks the attestation manifests of an index with this annotation
/// (value `attestation-manifest`).
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

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
        .is_some_and(|v| v == "attestation-manifest")
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
    let doc = read_json(&image::get_blob(index_digest)?, &what)?;
    let entries = doc
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::InvalidImage(format!("{what} has no \"manifests\" array")))?;
    for entry in entries {
        let entry = entry
            .as_object()
            .ok_or_else(|| Error::InvalidImage(format!("{what}: an entry is not an object")))?;
        let descriptor = descriptor_from_json(entry, &what)?;
        if media::is_index(&descriptor.media_type) {
            collect(&descriptor.digest, out, depth + 1)?;
        } else if media::is_manifest(&descriptor.media_type) && !is_attestation(entry) {
            let platform = match entry.get("platform").and_then(Platform::from_json) {
                Some(p) => Some(p),
                None => config_platform(&descriptor.digest)?,
            };
            out.push(ImageManifest {
                descriptor,
                platform,
            });
        }
    }
    Ok(())
}

/// Reads the manifest `digest`: its config and layer digests.
pub fn read_manifest(digest: &str) -> Result<ManifestBlobs, Error> {
    let what = format!("manifest {digest}");
    let doc = read_json(&image::get_blob(digest)?, &what)?;
    let digest_of = |v: &Value| {
        v.as_object()
            .ok_or_else(|| Error::InvalidImage(format!("{what}: a descriptor is not an object")))
            .and_then(|o| str_field(o, "digest", &what).map(str::to_owned))
    };
    let config = digest_of(
        doc.get("config")
            .ok_or_else(|| Error::InvalidImage(format!("{what} has no config")))?,
    )?;
    let layers = match doc.get("layers") {
        None => Vec::new(),
        Some(Value::Array(layers)) => layers.iter().map(digest_of).collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Error::InvalidImage(format!(
                "{what}: \"layers\" is not an array"
            )));
        }
    };
    Ok(ManifestBlobs { config, layers })
}

/// The platform recorded in the config of manifest `digest`.
fn config_platform(digest: &str) -> Result<Option<Platform>, Error> {
    let manifest = read_manifest(digest)?;
    let config = read_json(
        &image::get_blob(&manifest.config)?,
        &format!("config {}", manifest.config),
    )?;
    Ok(Platform::from_json(&config))
}

/// A descriptor of the contract from a JSON descriptor found in `what`.
pub fn descriptor_from_json(obj: &Map<String, Value>, what: &str) -> Result<Descriptor, Error> {
    let size = obj
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::InvalidImage(format!("{what}: a descriptor has no \"size\"")))?;
    let annotations = obj
        .get("annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let platform = obj.get("platform").and_then(|p| {
        let parsed = Platform::from_json(p)?;
        Some(types::Platform {
            architecture: parsed.architecture,
            os: parsed.os,
            os_version: string(p.get("os.version")),
            os_features: strings(p.get("os.features")),
            variant: parsed.variant,
        })
    });
    Ok(Descriptor {
        media_type: str_field(obj, "mediaType", what)?.to_owned(),
        digest: str_field(obj, "digest", what)?.to_owned(),
        size,
        annotations,
        platform,
        artifact_type: string(obj.get("artifactType")),
        urls: strings(obj.get("urls")),
    })
}

/// A JSON string as an owned one.
fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// The strings of a JSON array (none when it is not one).
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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
