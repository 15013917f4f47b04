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

pub mod config;
pub mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

use oci_spec::image::{Descriptor, MediaType};
use outport_image::{Blob, Image};
use serde_json::{Value, json};

use crate::error::Error;
use config::{CacheConfig, MEDIA_TYPE, Mode};

/// Largest `index.json`, manifest or cache config read.
const JSON_LIMIT: u64 = 16 << 20;
/// Annotation naming an `index.json` entry's tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Media type of OCI image manifests.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media types of indexes (BuildKit's `image-manifest=false` shape).
const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

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
    /// Reads the cache selected by `selector` from a BuildKit local cache
    /// directory. `Ok(None)` when `dir` holds no cache (not a layout, or
    /// the entry's manifest is an image's), so the caller may read it as an
    /// image instead.
    pub fn read_dir(dir: &Path, selector: &Selector) -> Result<Option<Cache>, Error> {
        if !dir.join("index.json").is_file() {
            return Ok(None);
        }
        let handle = Dir::open_ambient_dir(dir, ambient_authority())
            .map_err(|e| cache_error(dir, e.to_string()))?;
        Cache::read_layout(
            &Layout {
                dir: &handle,
                shown: dir,
            },
            selector,
        )
    }

    /// [`Cache::read_dir`] on an open directory: every file opened beneath
    /// it, no symlink followed.
    fn read_layout(layout: &Layout<'_>, selector: &Selector) -> Result<Option<Cache>, Error> {
        let index_path = layout.shown.join("index.json");
        let index = read_json_file(layout, Path::new("index.json"))?;
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| cache_error(&index_path, "no \"manifests\" list"))?;
        let tag = selector.tag.as_deref().unwrap_or("latest");
        let chosen = entries.iter().find(|e| match &selector.digest {
            Some(d) => e.get("digest").and_then(Value::as_str) == Some(d),
            None => {
                e.pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some(tag)
            }
        });
        let chosen = match (chosen, entries.len(), &selector.digest) {
            (Some(e), _, _) => e,
            (None, 1, None) if selector.tag.is_none() => &entries[0],
            (None, _, Some(d)) => {
                return Err(cache_error(
                    &index_path,
                    format!("no entry with digest {d}"),
                ));
            }
            (None, _, None) => {
                return Err(cache_error(&index_path, format!("no entry tagged {tag:?}")));
            }
        };
        let root = parse_descriptor(chosen, &index_path)?;
        let (root_json, root_path) = read_json_blob(layout, &root)?;
        let (config_desc, layer_descs) = if INDEX_TYPES.contains(&root.media_type().as_ref()) {
            let mut config = None;
            let mut layers = Vec::new();
            for entry in root_json
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let desc = parse_descriptor(entry, &root_path)?;
                if desc.media_type().as_ref() == MEDIA_TYPE {
                    config = Some(desc);
                } else {
                    layers.push(desc);
                }
            }
            match config {
                Some(c) => (c, layers),
                None => return Ok(None),
            }
        } else {
            let config = root_json
                .get("config")
                .ok_or_else(|| cache_error(&root_path, "no \"config\""))
                .and_then(|c| parse_descriptor(c, &root_path))?;
            if config.media_type().as_ref() != MEDIA_TYPE {
                return Ok(None);
            }
            let layers = root_json
                .get("layers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|l| parse_descriptor(l, &root_path))
                .collect::<Result<Vec<_>, _>>()?;
            (config, layers)
        };
        let config_path = layout.shown.join(blob_rel(&config_desc));
        let config_bytes = read_verified(layout, &blob_rel(&config_desc), &config_desc)?;
        let config: CacheConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| cache_error(&config_path, format!("malformed cache config: {e}")))?;
        config.check().map_err(|m| cache_error(&config_path, m))?;
        let name = layout.shown.display().to_string();
        let mut layers = Vec::with_capacity(layer_descs.len());
        for desc in layer_descs {
            let rel = blob_rel(&desc);
            let path = layout.shown.join(&rel);
            let file = layout.open(&rel)?;
            let shown = path.display().to_string();
            let blob = Blob::from_open_file(desc, file, &shown, &name, "cache layer")?;
            layers.push(Arc::new(blob));
        }
        for layer in &config.layers {
            if !layers
                .iter()
                .any(|b| b.descriptor().digest().to_string() == layer.blob)
            {
                return Err(cache_error(
                    &config_path,
                    format!(
                        "the cache config names blob {}, which the cache does not list",
                        layer.blob
                    ),
                ));
            }
        }
        Ok(Some(Cache {
            name,
            config,
            config_bytes: Some(config_bytes),
            layers,
        }))
    }

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

/// Checks an OCI layout a cache import wrote: every `index.json` entry is a
/// cache whose JSON blobs and layer blobs match their digests.
pub fn verify_layout(dir: &Dir, shown: &Path, deadline: Instant) -> Result<(), Error> {
    let layout = Layout { dir, shown };
    let index_path = shown.join("index.json");
    let index = read_json_file(&layout, Path::new("index.json"))?;
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return Err(cache_error(&index_path, "lists no cache"));
    }
    for entry in entries {
        let digest = entry
            .get("digest")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let selector = Selector { tag: None, digest };
        match Cache::read_layout(&layout, &selector)? {
            Some(cache) => cache.verify(Some(deadline))?,
            None => return Err(cache_error(&index_path, "an entry is not a cache")),
        }
    }
    Ok(())
}

/// The layers of each image manifest of `image` (attestation manifests,
/// platform `unknown/unknown`, left out).
fn image_manifests(image: &Image) -> Result<Vec<Vec<Descriptor>>, Error> {
    let read = |d: &Descriptor| -> Result<Value, Error> {
        let blob = image.blob(d.digest().as_ref()).ok_or_else(|| {
            cache_error(Path::new(image.name()), format!("no blob {}", d.digest()))
        })?;
        let bytes = blob.read_all(JSON_LIMIT)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| cache_error(Path::new(image.name()), e.to_string()))
    };
    let root = image.root();
    let mut manifests = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(desc) = pending.pop() {
        let value = read(&desc)?;
        if INDEX_TYPES.contains(&desc.media_type().as_ref()) {
            for entry in value
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .rev()
            {
                let child = parse_descriptor(entry, Path::new(image.name()))?;
                let attestation = child
                    .platform()
                    .as_ref()
                    .is_some_and(|p| p.os().to_string() == "unknown");
                if !attestation {
                    pending.push(child);
                }
            }
        } else {
            let layers = value
                .get("layers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|l| parse_descriptor(l, Path::new(image.name())))
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

fn parse_descriptor(value: &Value, holder: &Path) -> Result<Descriptor, Error> {
    let desc: Descriptor = serde_json::from_value(value.clone())
        .map_err(|e| cache_error(holder, format!("bad descriptor: {e}")))?;
    let digest = desc.digest().to_string();
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(cache_error(
            holder,
            format!("unsupported digest {digest:?}"),
        ));
    }
    Ok(desc)
}

/// A layout directory: an open handle, and the path messages name.
struct Layout<'a> {
    dir: &'a Dir,
    shown: &'a Path,
}

impl Layout<'_> {
    /// Opens the regular file `rel` beneath the layout without following a
    /// symlink anywhere on the way (a cache holds none).
    fn open(&self, rel: &Path) -> Result<std::fs::File, Error> {
        let path = self.shown.join(rel);
        let mut dir = self
            .dir
            .try_clone()
            .map_err(|e| cache_error(&path, e.to_string()))?;
        let mut parts: Vec<_> = rel.components().collect();
        let Some(last) = parts.pop() else {
            return Err(cache_error(&path, "not a file"));
        };
        for part in parts {
            dir = dir.open_dir_nofollow(part).map_err(|e| missing(&path, e))?;
        }
        let mut options = OpenOptions::new();
        options.read(true).follow(FollowSymlinks::No);
        let file = dir
            .open_with(last, &options)
            .map_err(|e| missing(&path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| cache_error(&path, e.to_string()))?;
        if !meta.is_file() {
            return Err(cache_error(&path, "not a regular file"));
        }
        Ok(file.into_std())
    }
}

/// A file that cannot be opened: missing, a symlink, or unreadable.
fn missing(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => cache_error(path, "missing blob"),
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            cache_error(path, "a symlink, which a cache may not hold")
        }
        _ if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            cache_error(path, "a symlink or file where a directory should be")
        }
        _ => cache_error(path, e.to_string()),
    }
}

/// The path of a blob in a layout directory (its digest was checked by
/// [`parse_descriptor`]).
fn blob_rel(desc: &Descriptor) -> PathBuf {
    let digest = desc.digest().to_string();
    let hex = digest.trim_start_matches("sha256:");
    Path::new("blobs").join("sha256").join(hex)
}

fn read_json_file(layout: &Layout<'_>, rel: &Path) -> Result<Value, Error> {
    let bytes = read_limited(layout, rel)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| cache_error(&layout.shown.join(rel), format!("malformed JSON: {e}")))
}

fn read_json_blob(layout: &Layout<'_>, desc: &Descriptor) -> Result<(Value, PathBuf), Error> {
    let rel = blob_rel(desc);
    let path = layout.shown.join(&rel);
    let bytes = read_verified(layout, &rel, desc)?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| cache_error(&path, format!("malformed JSON: {e}")))?;
    Ok((value, path))
}

/// Reads a small blob and checks its size and digest.
fn read_verified(layout: &Layout<'_>, rel: &Path, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    let path = layout.shown.join(rel);
    let bytes = read_limited(layout, rel)?;
    if bytes.len() as u64 != desc.size() {
        return Err(cache_error(
            &path,
            format!(
                "size {} does not match the descriptor's {}",
                bytes.len(),
                desc.size()
            ),
        ));
    }
    let actual = outport_image::sha256_digest(&bytes);
    if actual != desc.digest().to_string() {
        return Err(cache_error(
            &path,
            format!("digest mismatch: content is {actual}"),
        ));
    }
    Ok(bytes)
}

fn read_limited(layout: &Layout<'_>, rel: &Path) -> Result<Vec<u8>, Error> {
    let path = layout.shown.join(rel);
    let file = layout.open(rel)?;
    let mut bytes = Vec::new();
    file.take(JSON_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| cache_error(&path, e.to_string()))?;
    if bytes.len() as u64 > JSON_LIMIT {
        return Err(cache_error(
            &path,
            format!("larger than {JSON_LIMIT} bytes"),
        ));
    }
    Ok(bytes)
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
