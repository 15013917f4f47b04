//! A build cache kept as objects in a remote store (BuildKit's s3 and
//! azblob cache layouts): each layer blob under `{blobs}{digest}`, the
//! cache config under `{manifests}{name}` with every layer's `annotations`
//! giving its media type and size. [`annotated_config`] makes the config to
//! store; [`import`] reads one back into an OCI layout. The store is any
//! [`ObjectStore`] (the SDK's `s3::Bucket`, `azblob::Container`); what
//! their clients share is in `store` (answers, refusals), what their
//! components share in `settings` ([`names`], [`output_kind`]).

mod settings;
pub(crate) mod store;

pub use settings::{names, output_kind};

use serde_json::{Value, json};

use crate::bindings::wasi::filesystem::types::Descriptor as Dir;
use crate::cache::{CACHE_CONFIG, CacheImage, begin_layout, finish_layout, write_blob};
use crate::layout::blob_path;
use crate::plan::REF_NAME;
use crate::{Error, ResponseEntry, dest, image, log, media, response};

/// Largest cache config read.
const CONFIG_LIMIT: u64 = 16 << 20;
/// The media type of a layer whose annotations do not give one.
const DEFAULT_LAYER: &str = media::OCI_LAYER_GZIP;

/// What [`import`] needs of a store.
pub trait ObjectStore {
    /// The store, for messages (`S3 bucket B at HOST`).
    fn what(&self) -> String;
    /// The bytes of object `key` (at most `limit`); `None` when it does
    /// not exist.
    fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, Error>;
    /// Writes object `key` into `file` (the host splicing the bytes);
    /// returns the bytes written.
    fn get_to_file(&self, key: &str, file: &Dir) -> Result<u64, Error>;
}

/// Where the objects of one cache are.
pub struct Keys<'a> {
    /// Key prefix of the blobs (`prefix` + `blobs_prefix`).
    pub blobs: &'a str,
    /// Key prefix of the cache configs (`prefix` + `manifests_prefix`).
    pub manifests: &'a str,
}

/// The cache config as BuildKit stores it: every layer's `annotations`
/// give its `mediaType` and `size` (the importer has no manifest to find
/// them in). A config whose layers all have them is kept byte for byte.
pub fn annotated_config(cache: &CacheImage) -> Result<Vec<u8>, Error> {
    let bytes = cache.config.1.bytes()?;
    let mut config: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidImage(format!("the cache config is not JSON: {e}")))?;
    let mut changed = false;
    let layers = config
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for layer in layers {
        let Some(digest) = layer.get("blob").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let Some((desc, _)) = cache.layers.iter().find(|(d, _)| d.digest == digest) else {
            continue;
        };
        let Some(object) = layer.as_object_mut() else {
            continue;
        };
        let annotations = object.entry("annotations").or_insert_with(|| json!({}));
        let Some(annotations) = annotations.as_object_mut() else {
            continue;
        };
        if !annotations.contains_key("mediaType") {
            annotations.insert("mediaType".into(), json!(desc.media_type));
            changed = true;
        }
        if !annotations.contains_key("size") {
            annotations.insert("size".into(), json!(desc.size));
            changed = true;
        }
    }
    if !changed {
        return Ok(bytes);
    }
    serde_json::to_vec(&config)
        .map_err(|e| Error::Other(format!("serializing the cache config: {e}")))
}

/// Writes the cache of the first of `names` found in `store` into `dir` as
/// an OCI layout: the layers, the cache config, an image manifest naming
/// them, `index.json` listing it tagged with the name. None found is an
/// error naming them all.
pub fn import(
    store: &impl ObjectStore,
    keys: &Keys<'_>,
    names: &[String],
    dir: &Dir,
) -> Result<Vec<ResponseEntry>, Error> {
    let mut found = None;
    for name in names {
        let key = format!("{}{name}", keys.manifests);
        if let Some(bytes) = store.get_bytes(&key, CONFIG_LIMIT)? {
            found = Some((name, key, bytes));
            break;
        }
    }
    let (name, key, bytes) = found.ok_or_else(|| {
        Error::InvalidOption(format!(
            "{} has no cache named {} (no object {})",
            store.what(),
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(" or "),
            names
                .iter()
                .map(|n| format!("{}{n}", keys.manifests))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let config: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidImage(format!("object {key} is not a cache config: {e}")))?;
    begin_layout(dir)?;
    let mut layers = Vec::new();
    for layer in config
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let digest = layer
            .get("blob")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::InvalidImage(format!("object {key}: a layer has no blob")))?;
        let (_, path) = blob_path(digest)?;
        let file = dest::create_file(dir, &path)?;
        let size = store.get_to_file(&format!("{}{digest}", keys.blobs), &file)?;
        let media_type = layer
            .pointer("/annotations/mediaType")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_LAYER);
        layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
    }
    let config_blob = image::put_blob(CACHE_CONFIG, &bytes)?;
    let config_desc = write_blob(dir, &config_blob)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": CACHE_CONFIG, "digest": config_desc.0, "size": config_desc.1},
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| Error::Other(format!("serializing the manifest: {e}")))?;
    let root = image::put_blob(media::OCI_MANIFEST, &manifest)?;
    let (root_digest, root_size) = write_blob(dir, &root)?;
    finish_layout(
        dir,
        json!({
            "mediaType": media::OCI_MANIFEST,
            "digest": root_digest,
            "size": root_size,
            "annotations": {REF_NAME: name},
        }),
    )?;
    log::info(&format!("imported cache {name}: {} layers", layers.len()));
    Ok(vec![
        response::entry("cache.digest", root_digest),
        response::entry("cache.name", name.as_str()),
    ])
}
