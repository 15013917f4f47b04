//! What the instances of one run share.

use outport_image::Converter;

/// What the instances of one run share.
#[derive(Debug, Default)]
pub struct RunContext {
    /// Layer conversions (`convert-layers`), each made once per run.
    pub converter: Converter,
    /// The source date epoch passed in every request.
    pub source_date_epoch: Option<u64>,
    /// Where the input image was pulled from (`image.source`).
    pub image_source: Option<ImageSource>,
}

/// A registry repository the input image was pulled from: an exporter
/// pushing to the same registry mounts its layers from there
/// (`image.source` in the contract).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSource {
    /// The host (and port) serving the registry's API
    /// (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path in that registry (`library/alpine`).
    pub repository: String,
}

impl ImageSource {
    /// The repository of a `docker://` reference (as after `docker://`);
    /// `None` when it is not a reference.
    pub fn of_reference(reference: &str) -> Option<ImageSource> {
        let parsed = outport_oci::Reference::parse(reference).ok()?;
        Some(ImageSource {
            registry: parsed.registry().to_owned(),
            repository: parsed.path().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ImageSource;

    #[test]
    fn a_reference_names_the_api_host_and_the_repository() {
        let source = |r: &str| ImageSource::of_reference(r).map(|s| (s.registry, s.repository));
        assert_eq!(
            source("alpine"),
            Some(("registry-1.docker.io".into(), "library/alpine".into()))
        );
        assert_eq!(
            source(
                "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
            ),
            Some(("127.0.0.1:5000".into(), "team/app".into()))
        );
        assert_eq!(source("Not A Reference"), None);
    }
}
