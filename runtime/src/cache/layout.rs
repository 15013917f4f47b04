//! Reading a BuildKit local cache directory (an OCI layout) beneath an open
//! directory handle: every file opened without following a symlink, every
//! JSON blob checked against its digest and size.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use oci_spec::image::Descriptor;
use outport_image::Blob;
use outport_oci::Sha256Digest;
use outport_oci::digest::SHA256_PREFIX;
use outport_oci::document::{Index, Manifest};
use serde::Deserialize;
use serde_json::Value;

use super::config::{CacheConfig, MEDIA_TYPE};
use super::{Cache, INDEX_TYPES, JSON_LIMIT, REF_NAME, Selector, cache_error};
use crate::error::Error;

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
        let chosen = select(entries, selector, &index_path)?;
        let root = parse_descriptor(chosen, &index_path)?;
        let (root_json, root_path) = read_json_blob(layout, &root)?;
        let Some((config_desc, layer_descs)) = config_and_layers(&root, &root_json, &root_path)?
        else {
            return Ok(None);
        };
        let config_path = layout.shown.join(blob_rel(&config_desc));
        let config_bytes = read_verified(layout, &blob_rel(&config_desc), &config_desc)?;
        let config: CacheConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| cache_error(&config_path, format!("malformed cache config: {e}")))?;
        config
            .check()
            .map_err(|e| cache_error(&config_path, e.to_string()))?;
        let name = layout.shown.display().to_string();
        let layers = open_layers(layout, layer_descs, &name)?;
        check_listed(&config, &layers, &config_path)?;
        Ok(Some(Cache {
            name,
            config,
            config_bytes: Some(config_bytes),
            layers,
        }))
    }
}

/// The `index.json` entry `selector` chooses: by digest, else by tag, else
/// the only entry when no tag was asked for.
fn select<'a>(
    entries: &'a [Value],
    selector: &Selector,
    index_path: &Path,
) -> Result<&'a Value, Error> {
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
            return Err(cache_error(index_path, format!("no entry with digest {d}")));
        }
        (None, _, None) => {
            return Err(cache_error(index_path, format!("no entry tagged {tag:?}")));
        }
    };
    Ok(chosen)
}

/// The cache config's descriptor and the layers' of the chosen entry's
/// `root` (an index listing both, or an image manifest); `None` when it has
/// no cache config (an image's).
fn config_and_layers(
    root: &Descriptor,
    root_json: &Value,
    root_path: &Path,
) -> Result<Option<(Descriptor, Vec<Descriptor>)>, Error> {
    let typed = |e: serde_json::Error| cache_error(root_path, format!("bad descriptor: {e}"));
    let (config_desc, layer_descs) = if INDEX_TYPES.contains(&root.media_type().as_ref()) {
        let index: Index<Descriptor> = Index::deserialize(root_json).map_err(typed)?;
        let mut config = None;
        let mut layers = Vec::new();
        for entry in index.manifests {
            let desc = check_digest(entry, root_path)?;
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
        if root_json.get("config").is_none() {
            return Err(cache_error(root_path, "no \"config\""));
        }
        let manifest: Manifest<Descriptor> = Manifest::deserialize(root_json).map_err(typed)?;
        let config = check_digest(manifest.config, root_path)?;
        if config.media_type().as_ref() != MEDIA_TYPE {
            return Ok(None);
        }
        let layers = manifest
            .layers
            .into_iter()
            .map(|l| check_digest(l, root_path))
            .collect::<Result<Vec<_>, _>>()?;
        (config, layers)
    };
    Ok(Some((config_desc, layer_descs)))
}

/// Opens the layer blobs of cache `name`; each is checked as it streams.
fn open_layers(
    layout: &Layout<'_>,
    layer_descs: Vec<Descriptor>,
    name: &str,
) -> Result<Vec<Arc<Blob>>, Error> {
    let mut layers = Vec::with_capacity(layer_descs.len());
    for desc in layer_descs {
        let rel = blob_rel(&desc);
        let path = layout.shown.join(&rel);
        let file = layout.open(&rel)?;
        let shown = path.display().to_string();
        let blob = Blob::from_open_file(desc, file, &shown, name, "cache layer")?;
        layers.push(Arc::new(blob));
    }
    Ok(layers)
}

/// Checks that every blob the cache config names is one of `layers`.
fn check_listed(
    config: &CacheConfig,
    layers: &[Arc<Blob>],
    config_path: &Path,
) -> Result<(), Error> {
    for layer in &config.layers {
        if !layers
            .iter()
            .any(|b| b.descriptor().digest().to_string() == layer.blob)
        {
            return Err(cache_error(
                config_path,
                format!(
                    "the cache config names blob {}, which the cache does not list",
                    layer.blob
                ),
            ));
        }
    }
    Ok(())
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

/// Parses a descriptor found in `holder` and checks its digest
/// ([`check_digest`]).
fn parse_descriptor(value: &Value, holder: &Path) -> Result<Descriptor, Error> {
    let desc: Descriptor = serde_json::from_value(value.clone())
        .map_err(|e| cache_error(holder, format!("bad descriptor: {e}")))?;
    check_digest(desc, holder)
}

/// `desc`, found in `holder`, if its digest is a sha256 one: the only kind
/// a cache holds, and the only one a blob path is made from.
pub(super) fn check_digest(desc: Descriptor, holder: &Path) -> Result<Descriptor, Error> {
    if Sha256Digest::try_from(desc.digest()).is_err() {
        return Err(cache_error(
            holder,
            format!("unsupported digest {:?}", desc.digest().to_string()),
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
    let hex = digest.trim_start_matches(SHA256_PREFIX);
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
