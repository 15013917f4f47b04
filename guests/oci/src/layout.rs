//! What an OCI image layout contains: `oci-layout`, `index.json` naming the
//! image, and `blobs/<algorithm>/<hex>` for every blob.

use serde_json::{Map, Value, json};

use crate::bindings::outport::exporter::image::Blob;
use crate::bindings::outport::exporter::types::Error;
use crate::media;
use crate::plan::{IMAGE_NAME, Plan, REF_NAME, Root};
use crate::reference;

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The files of the layout, in the order they are written.
pub struct Layout<'a> {
    /// `index.json`.
    pub index_json: Vec<u8>,
    /// Directories under `blobs/`, parents first (`blobs/`, `blobs/sha256/`).
    pub dirs: Vec<String>,
    /// Each blob with its path (`blobs/sha256/<hex>`).
    pub blobs: Vec<(String, &'a Blob)>,
}

impl<'a> Layout<'a> {
    /// The layout of `plan`, with one `index.json` entry per name (or one
    /// unnamed entry).
    pub fn new(plan: &'a Plan, names: &[String]) -> Result<Self, Error> {
        let mut dirs = vec!["blobs/".to_owned()];
        let mut blobs = Vec::with_capacity(plan.blobs.len());
        for blob in &plan.blobs {
            let digest = blob.descriptor().digest;
            let (algorithm, path) = blob_path(&digest)?;
            let dir = format!("blobs/{algorithm}/");
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            blobs.push((path, blob));
        }
        Ok(Layout {
            index_json: index_json(&plan.root, names)?,
            dirs,
            blobs,
        })
    }
}

/// `(algorithm, "blobs/<algorithm>/<hex>")` for a digest, refusing anything
/// that could escape the layout.
pub fn blob_path(digest: &str) -> Result<(&str, String), Error> {
    let bad = || Error::InvalidImage(format!("unsupported digest {digest:?}"));
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(bad()),
    };
    if hex.len() != hex_len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    Ok((algorithm, format!("blobs/{algorithm}/{hex}")))
}

/// The root descriptor as JSON (OCI field order), with `extra` annotations.
pub fn descriptor_json(root: &Root, extra: &[(&str, &str)]) -> Value {
    let mut desc = Map::new();
    desc.insert("mediaType".into(), json!(root.media_type));
    desc.insert("digest".into(), json!(root.digest));
    desc.insert("size".into(), json!(root.size));
    let mut annotations = root.annotations.clone();
    annotations.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    if !annotations.is_empty() {
        desc.insert("annotations".into(), json!(annotations));
    }
    if let Some(t) = &root.artifact_type {
        desc.insert("artifactType".into(), json!(t));
    }
    Value::Object(desc)
}

/// `index.json`: one entry per name, as BuildKit's oci exporter writes it.
pub fn index_json(root: &Root, names: &[String]) -> Result<Vec<u8>, Error> {
    let manifests: Vec<Value> = if names.is_empty() {
        vec![descriptor_json(root, &[])]
    } else {
        names
            .iter()
            .map(|name| {
                let mut extra = vec![(IMAGE_NAME, name.as_str())];
                if let Some(r) = reference::ref_name(name) {
                    extra.push((REF_NAME, r));
                }
                descriptor_json(root, &extra)
            })
            .collect()
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&index).map_err(|e| Error::Other(format!("serializing index.json: {e}")))
}
