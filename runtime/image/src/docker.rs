//! Legacy `docker save` tarballs (`manifest.json` with `Config`, `RepoTags`,
//! `Layers`): synthesises an OCI image manifest for the chosen image, its
//! config and manifest held in memory, its layers byte ranges of the input.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use oci_spec::image::{
    Arch, Descriptor, ImageManifestBuilder, MediaType, Os, Platform, PlatformBuilder,
};
use outport_oci::document::ImageConfig;
use serde::Deserialize;

use crate::archive::compression_of;
use crate::blob::{Blob, FileRegion};
use crate::chunk::Chunk;
use crate::digest::{Hasher, is_sha256_digest, sha256_digest};
use crate::error::Error;
use crate::layout::{CONTAINERD_NAME, Chosen, REF_NAME, oci_digest};
use crate::select::{self, Candidate};
use crate::source::Source;
use crate::validate::JSON_LIMIT;

/// One image of `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    /// `null` (a Go nil slice) for none.
    layers: Option<Vec<String>>,
}

impl Entry {
    fn layers(&self) -> &[String] {
        self.layers.as_deref().unwrap_or_default()
    }

    fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }

    fn label(&self) -> &str {
        self.tags().first().map_or(&self.config, String::as_str)
    }
}

/// Whether the source holds a docker-save `manifest.json`.
pub(crate) fn is_docker_save(source: &Source) -> Result<bool, Error> {
    Ok(source.locate("manifest.json")?.is_some())
}

/// Reads `manifest.json`, chooses an image by `reference` and synthesises its manifest.
pub(crate) fn load(source: &Source, reference: Option<&str>) -> Result<Chosen, Error> {
    let holder = source.member_display("manifest.json");
    let Some(bytes) = source.read("manifest.json", JSON_LIMIT)? else {
        return Err(crate::layout::not_an_image(source));
    };
    let entries: Vec<Entry> =
        serde_json::from_slice(&bytes).map_err(|e| Error::json(&holder, &e))?;
    let input = source.display();
    let index = match (reference, entries.len()) {
        (_, 0) => {
            return Err(Error::NotAnImage {
                path: holder,
                reason: "manifest.json lists no images".to_owned(),
            });
        }
        (None, 1) => 0,
        (None, _) => {
            return Err(select::ambiguous(
                input,
                &candidates(source, &entries, false)?,
            ));
        }
        (Some(reference), _) => {
            let by_digest = reference.starts_with("sha256:");
            select::choose(input, &candidates(source, &entries, by_digest)?, reference)?
        }
    };
    let entry = &entries[index];
    let tag = reference
        .filter(|r| entry.tags().iter().any(|t| t == r))
        .or_else(|| entry.tags().first().map(String::as_str));
    synthesise(source, entry, tag, &holder)
}

/// The images of manifest.json as selection candidates; config digests
/// (docker image IDs) are computed only when a digest reference needs them.
fn candidates(source: &Source, entries: &[Entry], digests: bool) -> Result<Vec<Candidate>, Error> {
    let mut out = Vec::new();
    for entry in entries {
        let mut candidate = Candidate::new(entry.label());
        for tag in entry.tags() {
            candidate.add_name(tag);
        }
        if digests && let Some(config) = source.read(&entry.config, JSON_LIMIT)? {
            candidate.add_digest(&sha256_digest(&config));
        }
        out.push(candidate);
    }
    Ok(out)
}

/// Builds the OCI manifest of `entry`; `tag` names it in annotations.
fn synthesise(
    source: &Source,
    entry: &Entry,
    tag: Option<&str>,
    holder: &str,
) -> Result<Chosen, Error> {
    let input = source.display();
    let label = entry.label();
    let config = Config::read(source, entry)?;
    let diff_ids = config.diff_ids(entry, holder)?;
    let Layers {
        descriptors: layers,
        mut known,
    } = layer_blobs(source, entry, diff_ids, &config.name)?;

    let config_desc = Descriptor::new(
        MediaType::ImageConfig,
        config.bytes.len() as u64,
        oci_digest(&sha256_digest(&config.bytes), &config.name)?,
    );
    let manifest_bytes = manifest_bytes(config_desc.clone(), layers, label, holder)?;
    let mut root = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        oci_digest(&sha256_digest(&manifest_bytes), holder)?,
    );
    root.set_platform(platform(&config.parsed));
    if let Some(tag) = tag {
        root.set_annotations(Some(annotations(tag)));
    }

    let context = format!("image {label} of manifest.json");
    known.push((
        Blob::memory_from(
            config_desc,
            Arc::from(config.bytes),
            input,
            &format!("config of {context}"),
        ),
        config.name,
    ));
    known.push((
        Blob::memory_from(root.clone(), Arc::from(manifest_bytes), input, &context),
        holder.to_owned(),
    ));
    Ok(Chosen {
        root,
        known,
        holder: holder.to_owned(),
        context,
    })
}

/// The config of an image of `manifest.json`: its name in messages, its
/// bytes and what they say.
struct Config {
    name: String,
    bytes: Vec<u8>,
    parsed: ImageConfig,
}

impl Config {
    /// Reads and parses the config `entry` names.
    fn read(source: &Source, entry: &Entry) -> Result<Config, Error> {
        let name = source.member_display(&entry.config);
        let Some(bytes) = source.read(&entry.config, JSON_LIMIT)? else {
            return Err(Error::MissingBlob {
                path: name,
                context: format!("config of image {} in manifest.json", entry.label()),
            });
        };
        let parsed = serde_json::from_slice(&bytes).map_err(|e| Error::json(&name, &e))?;
        Ok(Config {
            name,
            bytes,
            parsed,
        })
    }

    /// Its `rootfs.diff_ids`, one per layer of `entry` (named in `holder`).
    fn diff_ids(&self, entry: &Entry, holder: &str) -> Result<&[String], Error> {
        let diff_ids = self
            .parsed
            .rootfs
            .as_ref()
            .ok_or_else(|| Error::MalformedJson {
                path: self.name.clone(),
                message: "missing field `rootfs`".to_owned(),
            })?
            // Absent (docker's `omitempty`) or `null` (a Go nil slice): none.
            .diff_ids
            .as_deref()
            .unwrap_or_default();
        if diff_ids.len() != entry.layers().len() {
            return Err(Error::invalid(
                holder,
                format!(
                    "image {} has {} layers but its config {} lists {} diff_ids",
                    entry.label(),
                    entry.layers().len(),
                    entry.config,
                    diff_ids.len()
                ),
            ));
        }
        Ok(diff_ids)
    }
}

/// The layers of an image of `manifest.json`.
struct Layers {
    /// Their descriptors, in order.
    descriptors: Vec<Descriptor>,
    /// A blob for each distinct one (a byte range of the input), with the
    /// name of its file.
    known: Vec<(Blob, String)>,
}

/// The layers of `entry`. A compressed layer is hashed here (its diff_id
/// is not its digest); an uncompressed one takes its diff_id as digest and
/// is verified when streamed.
fn layer_blobs(
    source: &Source,
    entry: &Entry,
    diff_ids: &[String],
    config_name: &str,
) -> Result<Layers, Error> {
    let input = source.display();
    let mut known: Vec<(Blob, String)> = Vec::new();
    let mut layers = Vec::new();
    let mut seen = HashMap::new();
    for (n, (path, diff_id)) in entry.layers().iter().zip(diff_ids).enumerate() {
        let context = format!(
            "layer {} of image {} in manifest.json",
            n + 1,
            entry.label()
        );
        if !is_sha256_digest(diff_id) {
            return Err(Error::InvalidDigest {
                path: config_name.to_owned(),
                digest: diff_id.to_owned(),
                context: format!("diff_id of layer {}", n + 1),
            });
        }
        let name = source.member_display(path);
        let Some(region) = source.locate(path)? else {
            return Err(Error::MissingBlob {
                path: name,
                context,
            });
        };
        let (media_type, digest, verified) = match sniff(&region, &name)? {
            Some("gzip") => (
                MediaType::ImageLayerGzip,
                hash_region(&region, &name)?,
                true,
            ),
            Some("zstd") => (
                MediaType::ImageLayerZstd,
                hash_region(&region, &name)?,
                true,
            ),
            // Anything else is taken as an uncompressed tar: if it is not,
            // streaming it fails the diff_id check.
            _ => (MediaType::ImageLayer, diff_id.to_owned(), false),
        };
        let desc = Descriptor::new(media_type, region.len, oci_digest(&digest, &name)?);
        layers.push(desc.clone());
        if seen.insert(digest, ()).is_none() {
            known.push((
                Blob::from_file(desc, region, input, &context, verified),
                name,
            ));
        }
    }
    Ok(Layers {
        descriptors: layers,
        known,
    })
}

/// The bytes of the OCI image manifest of `config` and `layers`, for the
/// image `label` of `holder`.
fn manifest_bytes(
    config: Descriptor,
    layers: Vec<Descriptor>,
    label: &str,
    holder: &str,
) -> Result<Vec<u8>, Error> {
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .map_err(|e| Error::invalid(holder, format!("cannot build a manifest for {label}: {e}")))?;
    serde_json::to_vec(&manifest).map_err(|e| {
        Error::invalid(
            holder,
            format!("cannot serialise a manifest for {label}: {e}"),
        )
    })
}

/// The annotations naming the image by `tag`: its full name for containerd,
/// its tag as the OCI ref name.
fn annotations(tag: &str) -> HashMap<String, String> {
    let mut annotations = HashMap::new();
    if let Some(full) = select::normalize(tag) {
        annotations.insert(CONTAINERD_NAME.to_owned(), full);
    }
    if let (_, Some(short)) = select::split_tag(tag) {
        annotations.insert(REF_NAME.to_owned(), short.to_owned());
    }
    annotations
}

/// The platform an image config names, if it names one.
fn platform(config: &ImageConfig) -> Option<Platform> {
    let mut builder = PlatformBuilder::default()
        .architecture(Arch::from(config.platform.architecture.as_deref()?))
        .os(Os::from(config.platform.os.as_deref()?));
    if let Some(variant) = &config.platform.variant {
        builder = builder.variant(variant.clone());
    }
    builder.build().ok()
}

/// The compression of a layer, by its magic bytes.
fn sniff(region: &FileRegion, name: &str) -> Result<Option<&'static str>, Error> {
    let mut magic = [0u8; 6];
    let len = usize::try_from(region.len.min(magic.len() as u64)).unwrap_or(0);
    let mut filled = 0;
    while filled < len {
        match region
            .file
            .read_at(&mut magic[filled..len], region.offset + filled as u64)
        {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(name, e)),
        }
    }
    Ok(compression_of(&magic[..filled]))
}

/// The digest of a compressed layer, whose diff_id is not its digest:
/// the whole layer is read once, with a fixed buffer.
fn hash_region(region: &FileRegion, name: &str) -> Result<String, Error> {
    let mut buf = Chunk::take();
    let mut hasher = Hasher::default();
    let mut pos = 0u64;
    while pos < region.len {
        let want = usize::try_from(region.len - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match region.file.read_at(&mut buf[..want], region.offset + pos) {
            Ok(0) => {
                return Err(Error::io(
                    name,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "layer ended early"),
                ));
            }
            Ok(n) => {
                hasher.update(&buf[..n]);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(name, e)),
        }
    }
    Ok(hasher.finish())
}
