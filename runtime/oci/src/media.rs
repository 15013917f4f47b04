//! Media types of image documents and layers, OCI and docker schema 2, and
//! tests on them. Docker's types have OCI counterparts ([`convert`]);
//! docker has no zstd layer and no annotations.

use std::fmt;

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The empty descriptor's type (the config of an artifact manifest).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// An uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip OCI layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd OCI layer (docker has no counterpart).
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// An uncompressed non-distributable OCI layer.
pub const OCI_FOREIGN_LAYER: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// A gzip non-distributable OCI layer.
pub const OCI_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// A zstd non-distributable OCI layer.
pub const OCI_FOREIGN_LAYER_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// A docker manifest list (the docker counterpart of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An uncompressed docker layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// A gzip docker layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A gzip docker foreign layer (its bytes are elsewhere, at its `urls`).
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// An in-toto statement: the layer of a BuildKit attestation manifest.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// BuildKit's cache config: the config of a cache manifest.
pub const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
/// The config of a WebAssembly component artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer of a WebAssembly component artifact: the component's bytes.
pub const WASM_LAYER: &str = "application/wasm";

/// Image indexes: OCI's and docker's manifest list.
pub const INDEXES: &[&str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST];
/// Image manifests: OCI's and docker schema 2's.
pub const MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
/// Image configs: OCI's and docker's.
pub const CONFIGS: &[&str] = &[OCI_CONFIG, DOCKER_CONFIG];
/// Image layers: the OCI tar layers (plain, gzip, zstd, non-distributable)
/// and docker's.
pub const LAYERS: &[&str] = &[
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_FOREIGN_LAYER,
    OCI_FOREIGN_LAYER_GZIP,
    OCI_FOREIGN_LAYER_ZSTD,
    DOCKER_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER_GZIP,
    DOCKER_LAYER,
];

/// The `Accept` header of a registry manifest request: every manifest and
/// index type ([`MANIFESTS`], [`INDEXES`]).
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// OCI and docker pairs of the types both families have, with the zstd
/// layer OCI alone has: index, manifest, config, then the layers.
const PAIRS: &[(&str, Option<&str>)] = &[
    (OCI_INDEX, Some(DOCKER_MANIFEST_LIST)),
    (OCI_MANIFEST, Some(DOCKER_MANIFEST)),
    (OCI_CONFIG, Some(DOCKER_CONFIG)),
    (OCI_LAYER, Some(DOCKER_LAYER)),
    (OCI_LAYER_GZIP, Some(DOCKER_LAYER_GZIP)),
    (OCI_LAYER_ZSTD, None),
    (OCI_FOREIGN_LAYER_GZIP, Some(DOCKER_FOREIGN_LAYER_GZIP)),
];

/// An image index or a docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    INDEXES.contains(&media_type)
}

/// An image manifest, OCI or docker schema 2.
pub fn is_manifest(media_type: &str) -> bool {
    MANIFESTS.contains(&media_type)
}

/// An image config, OCI or docker.
pub fn is_config(media_type: &str) -> bool {
    CONFIGS.contains(&media_type)
}

/// An image layer of [`LAYERS`].
pub fn is_layer(media_type: &str) -> bool {
    LAYERS.contains(&media_type)
}

/// A docker manifest or manifest list: they have no `annotations` field.
pub fn is_docker(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is a layer whose bytes are in the image (a plain,
/// gzip or zstd tar, OCI or docker; not a foreign layer), which the host
/// can convert.
pub fn is_convertible_layer(media_type: &str) -> bool {
    [
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
    ]
    .contains(&media_type)
}

/// The manifest, index, config or layer media type `media_type` in the
/// OCI (`oci`) or docker family; unknown types are kept. An error when the
/// docker family has no such type (zstd layers).
pub fn convert(media_type: &str, oci: bool) -> Result<&str, NoDockerType> {
    for (o, d) in PAIRS {
        if *o == media_type || *d == Some(media_type) {
            return match (oci, d) {
                (true, _) => Ok(o),
                (false, Some(d)) => Ok(d),
                (false, None) => Err(NoDockerType(o)),
            };
        }
    }
    Ok(media_type)
}

/// An OCI media type the docker family has no counterpart of (zstd
/// layers), which [`convert`] cannot turn into a docker one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoDockerType(pub &'static str);

impl fmt::Display for NoDockerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker media types have no counterpart of {}", self.0)
    }
}

impl std::error::Error for NoDockerType {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(convert(OCI_MANIFEST, false), Ok(DOCKER_MANIFEST));
        assert_eq!(convert(DOCKER_MANIFEST_LIST, true), Ok(OCI_INDEX));
        assert_eq!(convert(OCI_CONFIG, false), Ok(DOCKER_CONFIG));
        assert_eq!(convert(OCI_LAYER_GZIP, false), Ok(DOCKER_LAYER_GZIP));
        assert_eq!(convert(DOCKER_LAYER_GZIP, true), Ok(OCI_LAYER_GZIP));
        assert_eq!(convert(DOCKER_LAYER, true), Ok(OCI_LAYER));
        assert!(convert(OCI_LAYER_ZSTD, false).is_err());
        assert_eq!(convert("text/plain", false), Ok("text/plain"));
        assert!(is_convertible_layer(DOCKER_LAYER_GZIP));
        assert!(!is_convertible_layer(DOCKER_FOREIGN_LAYER_GZIP));
        assert!(is_docker(DOCKER_MANIFEST_LIST) && !is_docker(OCI_INDEX));
    }

    #[test]
    fn lists() {
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(is_manifest(DOCKER_MANIFEST) && !is_manifest(OCI_INDEX));
        assert!(is_config(DOCKER_CONFIG) && !is_config(BUILDKIT_CACHE_CONFIG));
        assert!(LAYERS.iter().all(|l| is_layer(l)) && !is_layer(IN_TOTO));
        let accept: Vec<&str> = ACCEPT_MANIFESTS.split(", ").collect();
        assert_eq!(
            accept,
            [
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_MANIFEST,
                DOCKER_MANIFEST_LIST
            ]
        );
    }
}
