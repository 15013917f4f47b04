//! What a [`super::Plan`] changes while walking: the annotations to set,
//! the layer conversion and the media type family.

use crate::bindings::outport::exporter::image::ConvertOptions;

/// Annotation of an `index.json` entry naming the image in full
/// (`docker.io/library/alpine:latest`); exporters set it from `name=` and
/// drop the input's. The annotation of an `index.json` entry naming the
/// image by its tag only is [`REF_NAME`].
pub use outport_oci::document::{IMAGE_NAME, REF_NAME};

/// Annotations to set while walking (BuildKit's `annotation*` options), each
/// list in the order the user gave them.
#[derive(Debug, Default, Clone)]
pub struct Rewrites {
    /// Set in every image manifest (attestation manifests excepted).
    pub manifest: Vec<(String, String)>,
    /// Set in the root index (an error when the root is a manifest).
    pub index: Vec<(String, String)>,
    /// Set on the descriptors of image manifests in an index, or on the root
    /// descriptor when the root is a manifest.
    pub manifest_descriptor: Vec<(String, String)>,
    /// Set on the root descriptor (the image's `index.json` entries).
    pub index_descriptor: Vec<(String, String)>,
    /// Layer conversion the host makes for every image manifest's layers
    /// (attestations excepted); none: layers as they are.
    pub layers: Option<ConvertOptions>,
    /// Write OCI (true) or docker (false) media types; none: the input's.
    pub oci_media_types: Option<bool>,
}
