//! The exporter's options: what `describe` lists and what `validate` accepts.

use outport_exporter::options::{OptionSpec, Parsed};
use outport_exporter::{Error, Rewrites, annotations};

/// Options after validation.
#[derive(Debug, Default)]
pub struct Options {
    /// Write a tarball (true, the default) or a directory.
    pub tar: bool,
    /// Image names, normalized (`alpine` → `docker.io/library/alpine:latest`).
    pub names: Vec<String>,
    /// The `annotation*` options.
    pub rewrites: Rewrites,
}

/// The options, as `describe` lists them and `validate` accepts them.
pub const SPECS: &[OptionSpec] = &[
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
    annotations::SPECS[0],
    annotations::SPECS[1],
    annotations::SPECS[2],
    annotations::SPECS[3],
    annotations::SPECS[4],
];

/// Parses and checks the options: unknown keys, bad values and repeated keys
/// are `invalid-option` errors.
pub fn parse(options: &[(String, String)]) -> Result<Options, Error> {
    let parsed = Parsed::new("oci", SPECS, options)?;
    Ok(Options {
        tar: parsed.bool("tar", true)?,
        names: parsed.image_names("name")?,
        rewrites: annotations::rewrites(options)?,
    })
}
