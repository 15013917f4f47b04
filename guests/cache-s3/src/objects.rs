//! The objects of a cache in the bucket: layer blobs and the cache config
//! under each name, written by [`export`] and read back by [`import`].

use outport_exporter::bindings::wasi::clocks::wall_clock;
use outport_exporter::bindings::wasi::filesystem::types::Descriptor as Dir;
use outport_exporter::cache::{CACHE_CONFIG, CacheImage, begin_layout, finish_layout, write_blob};
use outport_exporter::layout::blob_path;
use outport_exporter::plan::REF_NAME;
use outport_exporter::{Blob, Error, ResponseEntry, dest, image, log, media, response};
use serde_json::{Value, json};

use crate::Settings;

/// Largest cache config read.
const CONFIG_LIMIT: u64 = 16 << 20;
/// The media type of a layer whose annotations do not give one.
const DEFAULT_LAYER: &str = media::OCI_LAYER_GZIP;

/// Uploads the layers the bucket lacks (`upload_parallelism` at once),
/// refreshes those it has that are older than `touch_refresh`, then writes
/// the cache config under every name.
pub fn export(settings: &Settings) -> Result<Vec<ResponseEntry>, Error> {
    let cache = CacheImage::read()?;
    let bucket = &settings.bucket;
    let now = wall_clock::now();
    let mut missing: Vec<(String, &Blob)> = Vec::new();
    let (mut present, mut touched) = (0usize, 0usize);
    for (desc, blob) in &cache.layers {
        let key = format!("{}{}", settings.blobs, desc.digest);
        match bucket.head(&key)? {
            None => missing.push((key, blob)),
            Some(head) => {
                present += 1;
                if settings
                    .touch_refresh
                    .due(head.last_modified, (now.seconds, now.nanoseconds))
                {
                    bucket.touch(&key, i64::try_from(now.seconds).unwrap_or(i64::MAX))?;
                    log::debug(&format!("refreshed {key}"));
                    touched += 1;
                }
            }
        }
    }
    bucket.put_blobs(&missing, settings.upload_parallelism)?;
    let uploaded = missing.len();
    let config = annotated_config(&cache)?;
    for name in &settings.names {
        bucket.put_bytes(&format!("{}{name}", settings.manifests), &config)?;
    }
    let stored = image::put_blob(CACHE_CONFIG, &config)?.descriptor();
    log::info(&format!(
        "cache {}: {uploaded} blobs uploaded, {present} already in the bucket ({touched} of them refreshed)",
        settings.names.join(";")
    ));
    Ok(vec![
        response::entry("cache.digest", stored.digest),
        response::entry("cache.s3.uploaded", uploaded.to_string()),
        response::entry("cache.s3.present", present.to_string()),
        response::entry("cache.s3.refreshed", touched.to_string()),
    ])
}

/// The cache config as BuildKit stores it in S3: every layer's
/// `annotations` give its `mediaType` and `size` (the importer has no
/// manifest to find them in). A config whose layers all have them is kept
/// byte for byte.
fn annotated_config(cache: &CacheImage) -> Result<Vec<u8>, Error> {
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

/// Writes the cache of the first name into `dir` as an OCI layout: the
/// layers, the cache config, an image manifest naming them, `index.json`
/// listing it tagged with the name.
pub fn import(settings: &Settings, dir: &Dir) -> Result<Vec<ResponseEntry>, Error> {
    let bucket = &settings.bucket;
    let name = &settings.names[0];
    let key = format!("{}{name}", settings.manifests);
    let bytes = bucket.get_bytes(&key, CONFIG_LIMIT)?.ok_or_else(|| {
        Error::InvalidOption(format!(
            "S3 bucket {} has no cache named {name:?} (no object {key})",
            bucket.name
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
        let size = bucket.get_to_file(&format!("{}{digest}", settings.blobs), &file)?;
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
