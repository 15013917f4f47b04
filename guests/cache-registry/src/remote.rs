//! The cache in the registry: pushed by [`export`], pulled by [`import`].

use serde_json::{Value, json};

use outport_exporter::bindings::wasi::filesystem::types::Descriptor as Dir;
use outport_exporter::cache::{
    CacheImage, ExportOptions, begin_layout, finish_layout, referenced_digests, root_document,
    write_blob,
};
use outport_exporter::distribution::PushStats;
use outport_exporter::layout::blob_path;
use outport_exporter::plan::REF_NAME;
use outport_exporter::{Error, ResponseEntry, dest, image, log, media, response};

use crate::Target;

/// Pushes the cache (converted as `options` ask): its layers and config
/// the repository lacks (several uploads at once), then its root document
/// tagged.
pub fn export(target: &Target, options: &ExportOptions) -> Result<Vec<ResponseEntry>, Error> {
    let cache = CacheImage::read()?.convert(options)?;
    let registry = &target.registry;
    let blobs: Vec<_> = cache.layers.iter().map(|(_, b)| b).collect();
    let PushStats {
        uploaded, present, ..
    } = registry.push_blobs(&[blobs.as_slice(), &[&cache.config.1]].concat())?;
    let (media_type, bytes) = root_document(&cache, options)?;
    let root = image::put_blob(&media_type, &bytes)?;
    registry.put_manifest(&root, &media_type, &target.reference)?;
    let digest = root.descriptor().digest;
    log::info(&format!(
        "cache {}: {uploaded} blobs uploaded, {present} already present",
        target.name
    ));
    Ok(vec![
        response::entry("cache.digest", digest),
        response::entry("cache.ref", target.name.as_str()),
        response::entry("cache.registry.uploaded", uploaded.to_string()),
        response::entry("cache.registry.present", present.to_string()),
    ])
}

/// Pulls the cache's root document and every blob it names into `dir`, as
/// the OCI layout the local backend's import writes: `index.json` lists the
/// root, tagged as `ref=` is.
pub fn import(target: &Target, dir: &Dir) -> Result<Vec<ResponseEntry>, Error> {
    let registry = &target.registry;
    let (media_type, bytes) = registry.get_manifest(&target.reference)?.ok_or_else(|| {
        Error::InvalidOption(format!(
            "registry {} has no cache {} (manifest unknown)",
            registry.authority, target.name
        ))
    })?;
    if !media::is_index(&media_type) && !media::is_manifest(&media_type) {
        return Err(Error::Unsupported(format!(
            "{} is a {media_type:?}, not a manifest or an index",
            target.name
        )));
    }
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidImage(format!("{} is not valid JSON: {e}", target.name)))?;
    let root = image::put_blob(&media_type, &bytes)?;
    let desc = root.descriptor();
    if !target.tagged && desc.digest != target.reference {
        return Err(Error::InvalidImage(format!(
            "{}: the registry sent a document whose digest is {}",
            target.name, desc.digest
        )));
    }
    begin_layout(dir)?;
    write_blob(dir, &root)?;
    let digests = referenced_digests(&media_type, &doc);
    let mut pulled = 0usize;
    for digest in &digests {
        let (_, path) = blob_path(digest)?;
        if dest::exists(dir, &path)? {
            continue;
        }
        let file = dest::create_file(dir, &path)?;
        registry.get_blob_to_file(digest, &file)?;
        pulled += 1;
    }
    let mut entry = json!({"mediaType": media_type, "digest": desc.digest, "size": desc.size});
    if target.tagged {
        entry["annotations"] = json!({REF_NAME: target.reference});
    }
    finish_layout(dir, entry)?;
    log::info(&format!(
        "imported cache {} ({}): {pulled} blobs",
        target.name, desc.digest
    ));
    Ok(vec![
        response::entry("cache.digest", desc.digest),
        response::entry("cache.ref", target.name.as_str()),
    ])
}
