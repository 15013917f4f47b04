//! The exporter's options: what `describe` lists and what `validate` accepts.

use outport_exporter::Error;
use outport_exporter::image_options::{self, ImageOptions};
use outport_exporter::options::{OptionSpec, Parsed};

/// Options after validation.
#[derive(Debug)]
pub struct Options {
    /// Write a tarball (true, the default) or a directory.
    pub tar: bool,
    /// Image names, normalized (`alpine` → `docker.io/library/alpine:latest`).
    pub names: Vec<String>,
    /// Compression, media types, timestamps and annotations.
    pub image: ImageOptions,
}

/// The options of this exporter alone.
const OWN: &[OptionSpec] = &[
    OptionSpec::once(
        "tar",
        "write the OCI layout as a tarball (true) or as a directory (false)",
    )
    .default("true"),
    OptionSpec::repeatable(
        "name",
        "image name to record in index.json (io.containerd.image.name and \
         org.opencontainers.image.ref.name); repeat or separate with commas for several",
    ),
];

/// The options, as `describe` lists them and `validate` accepts them: its
/// own, then the image options every image exporter shares.
pub fn specs() -> Vec<OptionSpec> {
    [OWN, image_options::SPECS].concat()
}

/// Parses and checks the options: unknown keys, bad values, repeated keys
/// and conflicting options are `invalid-option` errors.
pub fn parse(options: &[(String, String)]) -> Result<Options, Error> {
    let parsed = Parsed::new("oci", &specs(), options)?;
    Ok(Options {
        tar: parsed.bool("tar", true)?,
        names: parsed.image_names("name")?,
        image: ImageOptions::parse("oci", &parsed)?,
    })
}
