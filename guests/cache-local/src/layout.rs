//! BuildKit's local cache layout: writing a cache into it (`export`) and
//! reading one entry back out into a fresh OCI layout (`import`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use outport_exporter::bindings::wasi::filesystem::types::Descriptor as Dir;
use outport_exporter::cache::{
    CacheImage, ExportOptions, begin_layout, finish_layout, referenced_digests, root_document,
};
use outport_exporter::layout::{OCI_LAYOUT, blob_path};
use outport_exporter::plan::REF_NAME;
use outport_exporter::{Blob, Error, ResponseEntry, dest, image, log, media, response};
/// Largest `index.json` or root document read.
const JSON_LIMIT: u64 = 16 << 20;

/// Writes `cache` into `dir` under `tag`; see the crate docs.
pub fn export(
    dir: &Dir,
    cache: &CacheImage,
    options: &ExportOptions,
    tag: &str,
    reset: bool,
) -> Result<Vec<ResponseEntry>, Error> {
    let (media_type, root_bytes) = root_document(cache, options)?;
    let root = image::put_blob(&media_type, &root_bytes)?;
    let root_desc = root.descriptor();
    if !dest::exists(dir, "oci-layout")? {
        dest::write_file(dir, "oci-layout", OCI_LAYOUT)?;
    }
    dest::create_dir(dir, "blobs")?;
    dest::create_dir(dir, "blobs/sha256")?;
    let mut blobs: Vec<(&str, &Blob)> = vec![(&root_desc.digest, &root)];
    blobs.push((&cache.config.0.digest, &cache.config.1));
    blobs.extend(cache.layers.iter().map(|(d, b)| (d.digest.as_str(), b)));
    let (mut written, mut kept) = (0, 0);
    for (digest, blob) in blobs {
        let (_, path) = blob_path(digest)?;
        if dest::exists(dir, &path)? {
            kept += 1;
            continue;
        }
        let file = dest::create_file(dir, &path)?;
        blob.copy_to_file(&file, 0)?;
        written += 1;
    }
    let mut index = read_index(dir)?.unwrap_or_else(empty_index);
    let entries = index_entries(&mut index)?;
    entries.retain(|e| e.pointer(&ref_name_pointer()).and_then(Value::as_str) != Some(tag));
    entries.push(json!({
        "mediaType": media_type,
        "digest": root_desc.digest,
        "size": root_desc.size,
        "annotations": {REF_NAME: tag},
    }));
    let index_bytes = to_json(&index)?;
    dest::replace_file(dir, "index.json", &index_bytes)?;
    let removed = if reset {
        remove_unreferenced(dir, &index)?
    } else {
        0
    };
    log::info(&format!(
        "cache {tag}: {written} blobs written, {kept} already present, {removed} removed"
    ));
    Ok(vec![
        response::entry("cache.digest", root_desc.digest.clone()),
        response::entry("cache.tag", tag),
    ])
}

/// Copies the entry of `src` chosen by `digest` or `tag` (default
/// `latest`; the only entry when no tag is asked and none is `latest`) and
/// every blob it refers to into `dir`, as an OCI layout listing that entry.
pub fn import(
    src: &Dir,
    dir: &Dir,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<Vec<ResponseEntry>, Error> {
    let mut index = read_index(src)?.ok_or_else(|| {
        Error::InvalidImage("src has no index.json: not a local cache".to_owned())
    })?;
    let entries = index_entries(&mut index)?;
    let wanted = tag.unwrap_or("latest");
    let found = entries.iter().find(|e| match digest {
        Some(d) => e.get("digest").and_then(Value::as_str) == Some(d),
        None => e.pointer(&ref_name_pointer()).and_then(Value::as_str) == Some(wanted),
    });
    let entry = match (found, digest, tag, entries.len()) {
        (Some(e), _, _, _) => e.clone(),
        (None, None, None, 1) => entries[0].clone(),
        (None, Some(d), _, _) => {
            return Err(Error::InvalidOption(format!(
                "src has no entry with digest {d}"
            )));
        }
        (None, None, _, _) => {
            return Err(Error::InvalidOption(format!(
                "src has no entry tagged {wanted:?}"
            )));
        }
    };
    let root_digest = entry
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidImage("src index.json: an entry has no digest".to_owned()))?
        .to_owned();
    let media_type = entry
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !media::is_index(media_type) && !media::is_manifest(media_type) {
        return Err(Error::Unsupported(format!(
            "src entry {root_digest} is a {media_type:?}, not a manifest or an index"
        )));
    }
    let (_, root_path) = blob_path(&root_digest)?;
    let root_bytes = dest::read_file(src, &root_path, JSON_LIMIT)?
        .ok_or_else(|| Error::InvalidImage(format!("src is missing blob {root_path}")))?;
    let root: Value = serde_json::from_slice(&root_bytes)
        .map_err(|e| Error::InvalidImage(format!("src {root_path} is not valid JSON: {e}")))?;
    let mut digests = vec![root_digest.clone()];
    digests.extend(referenced_digests(media_type, &root));
    begin_layout(dir)?;
    let mut copied = BTreeSet::new();
    for digest in &digests {
        let (_, path) = blob_path(digest)?;
        if !copied.insert(path.clone()) {
            continue;
        }
        if !dest::exists(src, &path)? {
            return Err(Error::InvalidImage(format!("src is missing blob {path}")));
        }
        dest::copy_file(src, dir, &path)?;
    }
    let tag = entry
        .pointer(&ref_name_pointer())
        .and_then(Value::as_str)
        .map(str::to_owned);
    finish_layout(dir, entry)?;
    log::info(&format!(
        "imported cache {root_digest}: {} blobs",
        copied.len()
    ));
    let mut out = vec![response::entry("cache.digest", root_digest)];
    if let Some(t) = tag {
        out.push(response::entry("cache.tag", t));
    }
    Ok(out)
}

/// Removes every blob no entry of `index` refers to (directly, or through
/// the entry's manifest or index); returns how many.
fn remove_unreferenced(dir: &Dir, index: &Value) -> Result<usize, Error> {
    let mut keep = BTreeSet::new();
    for entry in index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(digest) = entry.get("digest").and_then(Value::as_str) else {
            continue;
        };
        keep.insert(digest.to_owned());
        let media_type = entry
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (_, path) = blob_path(digest)?;
        if let Some(bytes) = dest::read_file(dir, &path, JSON_LIMIT)?
            && let Ok(doc) = serde_json::from_slice::<Value>(&bytes)
        {
            keep.extend(referenced_digests(media_type, &doc));
        }
    }
    let mut removed = 0;
    for name in dest::list_dir(dir, "blobs/sha256")? {
        if !keep.contains(&format!("sha256:{name}")) {
            dest::remove_file(dir, &format!("blobs/sha256/{name}"))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn ref_name_pointer() -> String {
    format!("/annotations/{}", REF_NAME.replace('/', "~1"))
}

fn empty_index() -> Value {
    json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []})
}

/// `index.json` of `dir`, parsed; `None` when there is none.
fn read_index(dir: &Dir) -> Result<Option<Value>, Error> {
    let Some(bytes) = dest::read_file(dir, "index.json", JSON_LIMIT)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::InvalidImage(format!("index.json is not valid JSON: {e}")))
}

/// The `manifests` list of an index.
fn index_entries(index: &mut Value) -> Result<&mut Vec<Value>, Error> {
    index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| Error::InvalidImage("index.json has no \"manifests\" list".to_owned()))
}

fn to_json(value: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Other(format!("serializing index.json: {e}")))
}
