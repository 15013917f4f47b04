//! The response keys of an export.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::bindings::outport::exporter::types::{Error, ResponseEntry};
use crate::layout::descriptor_json;
use crate::plan::Plan;

/// `containerimage.digest`, `containerimage.config.digest` (single manifest
/// only), `containerimage.descriptor` (base64 of the root descriptor's JSON)
/// and `image.name` (the normalized names, comma-separated).
pub fn entries(plan: &Plan, names: &[String]) -> Result<Vec<ResponseEntry>, Error> {
    let entry = |key: &str, value: String| ResponseEntry {
        key: key.to_owned(),
        value,
    };
    let mut out = vec![entry("containerimage.digest", plan.root.digest.clone())];
    if let Some(config) = &plan.config_digest {
        out.push(entry("containerimage.config.digest", config.clone()));
    }
    let descriptor = serde_json::to_vec(&descriptor_json(&plan.root, &[]))
        .map_err(|e| Error::Other(format!("serializing the root descriptor: {e}")))?;
    out.push(entry(
        "containerimage.descriptor",
        STANDARD.encode(descriptor),
    ));
    if !names.is_empty() {
        out.push(entry("image.name", names.join(",")));
    }
    Ok(out)
}
