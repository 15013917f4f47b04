//! An OCI image layout: `oci-layout`, `index.json` naming the image, and
//! `blobs/<algorithm>/<hex>` for every blob of a [`Plan`]; written as a
//! directory ([`Layout::write_dir`]) or into a tar ([`Layout::write_tar`]),
//! blob bytes moved by the host.

use serde_json::{Map, Value, json};

use crate::bindings::outport::exporter::image::Blob;
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::Descriptor as Dir;
use crate::dest::{create_dir, create_file, write_file};
use crate::log::{self, Progress};
use crate::media;
use crate::plan::{IMAGE_NAME, Plan, REF_NAME, Root};
use crate::reference;
use crate::tar::TarWriter;

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

impl Layout<'_> {
    /// Writes the layout into the directory `dir`; returns the number of
    /// bytes written.
    pub fn write_dir(&self, dir: &Dir) -> Result<u64, Error> {
        write_file(dir, "oci-layout", OCI_LAYOUT)?;
        write_file(dir, "index.json", &self.index_json)?;
        for d in &self.dirs {
            create_dir(dir, d.trim_end_matches('/'))?;
        }
        let mut written = (OCI_LAYOUT.len() + self.index_json.len()) as u64;
        let mut progress = Progress::start("writing blobs", self.blobs.len() as u64);
        for (path, blob) in &self.blobs {
            let file = create_file(dir, path)?;
            let size = blob.descriptor().size;
            let copied = blob.copy_to_file(&file, 0)?;
            if copied != size {
                return Err(Error::Io(format!(
                    "writing {path}: copied {copied} bytes, expected {size}"
                )));
            }
            written += copied;
            log::debug(&format!("wrote {path} ({copied} bytes)"));
            progress.step();
        }
        Ok(written)
    }

    /// Writes the layout into `tar`: `oci-layout`, `index.json`, then
    /// `extra` files (e.g. docker's `manifest.json`), the `blobs/`
    /// directories and the blobs.
    pub fn write_tar(&self, tar: &mut TarWriter, extra: &[(&str, &[u8])]) -> Result<(), Error> {
        tar.file("oci-layout", OCI_LAYOUT)?;
        tar.file("index.json", &self.index_json)?;
        for (path, bytes) in extra {
            tar.file(path, bytes)?;
        }
        for d in &self.dirs {
            tar.dir(d)?;
        }
        let mut progress = Progress::start("writing blobs", self.blobs.len() as u64);
        for (path, blob) in &self.blobs {
            tar.blob(path, blob)?;
            progress.step();
        }
        Ok(())
    }
}

/// `(algorithm, "blobs/<algorithm>/<hex>")` for a digest, refusing anything
/// that could escape the layout.
pub fn blob_path(digest: &str) -> Result<(&str, String), Error> {
    let (algorithm, hex) = outport_oci::digest::split_known(digest)
        .ok_or_else(|| Error::InvalidImage(format!("unsupported digest {digest:?}")))?;
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
