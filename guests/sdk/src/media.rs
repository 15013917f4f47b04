//! Media types of image documents, and tests on them.

/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A docker manifest list (the docker counterpart of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// An image index or a docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// An image manifest, OCI or docker schema 2.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// Docker media types have no `annotations` field.
pub fn is_docker(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == DOCKER_MANIFEST_LIST
}

/// An OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types, OCI and docker pairs, with their compression (`None`
/// for the docker counterpart: docker has no zstd layer type).
const LAYERS: &[(&str, Option<&str>)] = &[
    (
        "application/vnd.oci.image.layer.v1.tar",
        Some("application/vnd.docker.image.rootfs.diff.tar"),
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
    ),
    ("application/vnd.oci.image.layer.v1.tar+zstd", None),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        Some("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
    ),
];

/// Whether `media_type` is a layer whose bytes are in the image (a plain,
/// gzip or zstd tar, OCI or docker; not a foreign layer), which the host
/// can convert.
pub fn is_convertible_layer(media_type: &str) -> bool {
    LAYERS[..3]
        .iter()
        .any(|(oci, docker)| *oci == media_type || *docker == Some(media_type))
}

/// The manifest, index, config or layer media type `media_type` in the
/// OCI (`oci`) or docker family; unknown types are kept. An error when the
/// docker family has no such type (zstd layers).
pub fn convert(media_type: &str, oci: bool) -> Result<&str, String> {
    let pairs = [
        (OCI_INDEX, Some(DOCKER_MANIFEST_LIST)),
        (OCI_MANIFEST, Some(DOCKER_MANIFEST)),
        (OCI_CONFIG, Some(DOCKER_CONFIG)),
    ];
    for (o, d) in pairs.iter().chain(LAYERS) {
        if *o == media_type || *d == Some(media_type) {
            return match (oci, d) {
                (true, _) => Ok(o),
                (false, Some(d)) => Ok(d),
                (false, None) => Err(format!("docker media types have no counterpart of {o}")),
            };
        }
    }
    Ok(media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(convert(OCI_MANIFEST, false), Ok(DOCKER_MANIFEST));
        assert_eq!(convert(DOCKER_MANIFEST_LIST, true), Ok(OCI_INDEX));
        assert_eq!(convert(OCI_CONFIG, false), Ok(DOCKER_CONFIG));
        let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
        let docker_gzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        assert_eq!(convert(gzip, false), Ok(docker_gzip));
        assert_eq!(convert(docker_gzip, true), Ok(gzip));
        assert!(convert("application/vnd.oci.image.layer.v1.tar+zstd", false).is_err());
        assert_eq!(convert("text/plain", false), Ok("text/plain"));
        assert!(is_convertible_layer(docker_gzip));
        assert!(!is_convertible_layer(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        ));
    }
}
