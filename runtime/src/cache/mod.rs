//! Build caches, as BuildKit's cache exporters and importers see them: a
//! cache config ([`config::CacheConfig`]) and the blobs its layers name.
//!
//! A [`Cache`] comes from a BuildKit local cache directory
//! ([`Cache::read_dir`]: `index.json` → an image manifest whose config is the
//! cache config, or an index listing the layers and the config; every JSON
//! blob digest-checked, layers checked as they stream) or from an image
//! ([`Cache::from_image`]: the chain of its layers, BuildKit's `mode=min`
//! shape). [`Cache::to_image`] presents it to a cache backend through the
//! `image` interface: one OCI image manifest whose config is the cache config
//! and whose layers are the cache's blobs.
//!
//! `layout.rs` reads (and checks) a BuildKit local cache directory;
//! `s3.rs` and `azblob.rs` say what the networked backends may reach and
//! how the host signs their requests.

pub mod azblob;
pub mod config;
mod layout;
pub mod s3;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use oci_spec::image::{Descriptor, MediaType};
use outport_image::{Blob, Image};
use outport_oci::document::{Index, Manifest};
use outport_oci::media;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Error;
use config::{CacheConfig, MEDIA_TYPE, Mode};
use layout::check_digest;

pub use layout::verify_layout;

/// Largest `index.json`, manifest or cache config read.
const JSON_LIMIT: u64 = 16 << 20;
/// Annotation naming an `index.json` entry's tag.
pub use outport_oci::document::REF_NAME;
/// Media type of OCI image manifests.
const OCI_MANIFEST: &str = media::OCI_MANIFEST;
/// Media types of indexes (BuildKit's `image-manifest=false` shape).
const INDEX_TYPES: &[&str] = media::INDEXES;

/// A build cache: its config and the blobs of its layers.
#[derive(Clone, Debug)]
pub struct Cache {
    name: String,
    config: CacheConfig,
    /// The config's original bytes, while they still describe `config`.
    config_bytes: Option<Vec<u8>>,
    layers: Vec<Arc<Blob>>,
}

/// Where a cache is chosen in an `index.json`.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// An entry's tag (`org.opencontainers.image.ref.name`); default `latest`.
    pub tag: Option<String>,
    /// An entry's digest; wins over the tag.
    pub digest: Option<String>,
}

fn cache_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Cache {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl Cache {
    /// The cache of `image`: for each image manifest (attestations left
    /// out), the chain of its layers (see [`CacheConfig::from_layers`]),
    /// merged. The layer blobs are the image's own (shared, not copied).
    pub fn from_image(image: &Image, mode: Mode) -> Result<Cache, Error> {
        let mut config = CacheConfig::default();
        let mut layers: Vec<Arc<Blob>> = Vec::new();
        for manifest in image_manifests(image)? {
            let digests: Vec<String> = manifest.iter().map(|d| d.digest().to_string()).collect();
            config.merge(CacheConfig::from_layers(&digests, mode));
            for digest in &digests {
                if let Some(blob) = image.blob(digest)
                    && !layers.iter().any(|b| Arc::ptr_eq(b, blob))
                {
                    layers.push(blob.clone());
                }
            }
        }
        Ok(Cache {
            name: image.name().to_owned(),
            config,
            config_bytes: None,
            layers,
        })
    }

    /// Keeps what `mode` asks for (see [`CacheConfig::apply_mode`]).
    pub fn with_mode(mut self, mode: Mode) -> Cache {
        if let Some(config) = self.config.apply_mode(mode) {
            self.layers.retain(|b| {
                let digest = b.descriptor().digest().to_string();
                config.layers.iter().any(|l| l.blob == digest)
            });
            self.config = config;
            self.config_bytes = None;
        }
        self
    }

    /// The cache config.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Reads every layer blob whole, checking its digest and size, giving
    /// up at `deadline`.
    pub fn verify(&self, deadline: Option<Instant>) -> Result<(), Error> {
        for blob in &self.layers {
            read_to_end_by(&mut blob.open(), deadline).map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    return cache_error(
                        Path::new(&self.name),
                        "time limit exceeded while verifying",
                    );
                }
                // The reader's errors are the image crate's, which name the
                // input and the blob already.
                match e
                    .into_inner()
                    .map(|inner| inner.downcast::<outport_image::Error>())
                {
                    Some(Ok(inner)) => Error::Input(*inner),
                    Some(Err(other)) => cache_error(Path::new(&self.name), other.to_string()),
                    None => cache_error(Path::new(&self.name), "read error"),
                }
            })?;
        }
        Ok(())
    }

    /// The cache as an image: one OCI image manifest (the root) whose config
    /// is the cache config and whose layers are the cache's blobs.
    pub fn to_image(&self) -> Image {
        let config_bytes = self.config_bytes.clone().unwrap_or_else(|| {
            // Serialising plain structs of strings and integers cannot fail.
            serde_json::to_vec(&self.config).unwrap_or_default()
        });
        let config = in_memory(MEDIA_TYPE, config_bytes);
        let layers: Vec<Value> = self
            .layers
            .iter()
            .map(|b| {
                let d = b.descriptor();
                json!({"mediaType": d.media_type().to_string(), "digest": d.digest().to_string(), "size": d.size()})
            })
            .collect();
        let c = config.descriptor();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": MEDIA_TYPE, "digest": c.digest().to_string(), "size": c.size()},
            "layers": layers,
        });
        let manifest = in_memory(
            OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap_or_default(),
        );
        let root = manifest.descriptor().clone();
        let mut blobs = vec![Arc::new(manifest), Arc::new(config)];
        blobs.extend(self.layers.iter().cloned());
        Image::from_blobs(&self.name, root, blobs)
    }
}

/// The layers of each image manifest of `image` (attestation manifests,
/// platform `unknown/unknown`, left out).
fn image_manifests(image: &Image) -> Result<Vec<Vec<Descriptor>>, Error> {
    let holder = Path::new(image.name());
    fn read<T: DeserializeOwned>(image: &Image, d: &Descriptor) -> Result<T, Error> {
        let holder = Path::new(image.name());
        let blob = image
            .blob(d.digest().as_ref())
            .ok_or_else(|| cache_error(holder, format!("no blob {}", d.digest())))?;
        let bytes = blob.read_all(JSON_LIMIT)?;
        serde_json::from_slice(&bytes).map_err(|e| cache_error(holder, e.to_string()))
    }
    let root = image.root();
    let mut manifests = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(desc) = pending.pop() {
        if INDEX_TYPES.contains(&desc.media_type().as_ref()) {
            let index: Index<Descriptor> = read(image, &desc)?;
            for child in index.manifests.into_iter().rev() {
                let child = check_digest(child, holder)?;
                let attestation = child
                    .platform()
                    .as_ref()
                    .is_some_and(|p| p.os().to_string() == "unknown");
                if !attestation {
                    pending.push(child);
                }
            }
        } else {
            let manifest: Manifest<Descriptor> = read(image, &desc)?;
            let layers = manifest
                .layers
                .into_iter()
                .map(|l| check_digest(l, holder))
                .collect::<Result<Vec<_>, _>>()?;
            manifests.push(layers);
        }
    }
    Ok(manifests)
}

fn in_memory(media_type: &str, data: Vec<u8>) -> Blob {
    let digest = outport_image::sha256_digest(&data);
    // A digest just computed always parses.
    let digest: oci_spec::image::Digest = digest.parse().expect("a computed sha256 digest parses");
    let desc = Descriptor::new(MediaType::from(media_type), data.len() as u64, digest);
    Blob::new_in_memory(desc, data.into())
}

/// Reads `reader` to its end, failing with `TimedOut` at `deadline`.
fn read_to_end_by(reader: &mut impl Read, deadline: Option<Instant>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        if reader.read(&mut buf)? == 0 {
            return Ok(());
        }
    }
}
