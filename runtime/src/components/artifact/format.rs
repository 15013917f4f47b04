//! The artifact's format: the parts of its OCI image manifest read and
//! written here, and its config.

use serde::{Deserialize, Serialize};

/// A descriptor in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Descriptor {
    #[serde(rename = "mediaType")]
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: u64,
}

/// The parts of an OCI image manifest read and written here.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub(super) schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub(super) media_type: Option<String>,
    pub(super) config: Descriptor,
    pub(super) layers: Vec<Descriptor>,
}

/// The artifact's config, as the CNCF Wasm OCI artifact spec has it.
#[derive(Debug, Serialize)]
pub(super) struct WasmConfig<'a> {
    pub(super) architecture: &'static str,
    pub(super) os: &'static str,
    #[serde(rename = "layerDigests")]
    pub(super) layer_digests: [&'a str; 1],
    pub(super) component: ComponentInfo<'a>,
}

/// The `component` part of the config: what the component exports and
/// imports (as `outport inspect` lists them).
#[derive(Debug, Serialize)]
pub(super) struct ComponentInfo<'a> {
    pub(super) exports: &'a [String],
    pub(super) imports: &'a [String],
}

/// `sha256:HEX` of `bytes`.
pub(super) fn sha256(bytes: &[u8]) -> String {
    outport_image::sha256_digest(bytes)
}
