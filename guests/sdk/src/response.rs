//! Response keys: `containerimage.digest`, `containerimage.config.digest`,
//! `containerimage.descriptor` (base64 of the root descriptor's JSON, as
//! BuildKit writes it) and `image.name`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::bindings::outport::exporter::types::{Error, ResponseEntry};
use crate::layout::descriptor_json;
use crate::plan::{Plan, Root};

/// One response entry.
pub fn entry(key: &str, value: impl Into<String>) -> ResponseEntry {
    ResponseEntry {
        key: key.to_owned(),
        value: value.into(),
    }
}

/// Base64 of the JSON of `root` (media type, digest, size, annotations), the
/// value of `containerimage.descriptor`.
pub fn descriptor_base64(root: &Root) -> Result<String, Error> {
    let descriptor = serde_json::to_vec(&descriptor_json(root, &[]))
        .map_err(|e| Error::Other(format!("serializing the root descriptor: {e}")))?;
    Ok(STANDARD.encode(descriptor))
}

/// The response of an image export: `containerimage.digest` (the plan's
/// root), `containerimage.config.digest` (when the root is a manifest),
/// `containerimage.descriptor` and `image.name` (the normalized names,
/// comma-separated, when there are any).
pub fn image_entries(plan: &Plan, names: &[String]) -> Result<Vec<ResponseEntry>, Error> {
    let mut out = vec![entry("containerimage.digest", plan.root.digest.clone())];
    if let Some(config) = &plan.config_digest {
        out.push(entry("containerimage.config.digest", config.clone()));
    }
    out.push(entry(
        "containerimage.descriptor",
        descriptor_base64(&plan.root)?,
    ));
    if !names.is_empty() {
        out.push(entry("image.name", names.join(",")));
    }
    Ok(out)
}
