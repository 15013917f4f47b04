//! The objects of a cache in the bucket: layer blobs and the cache config
//! under each name, written by [`export`] and read back by [`import`].

use outport_exporter::bindings::wasi::clocks::wall_clock;
use outport_exporter::bindings::wasi::filesystem::types::Descriptor as Dir;
use outport_exporter::cache::{CACHE_CONFIG, CacheImage};
use outport_exporter::object_cache::{self, Keys, annotated_config};
use outport_exporter::{Blob, Error, ResponseEntry, image, log, response};

use crate::Settings;

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

/// Writes the cache of the first name found into `dir` as an OCI layout
/// (see [`object_cache::import`]).
pub fn import(settings: &Settings, dir: &Dir) -> Result<Vec<ResponseEntry>, Error> {
    let keys = Keys {
        blobs: &settings.blobs,
        manifests: &settings.manifests,
    };
    object_cache::import(&settings.bucket, &keys, &settings.names, dir)
}
