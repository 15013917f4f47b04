//! The exporter's options: what `describe` lists and what `validate` accepts.

use outport_exporter::options::{OptionSpec, Parsed};
use outport_exporter::{Error, Rewrites};

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

/// Which annotation list an option prefix fills.
#[derive(Clone, Copy)]
enum Target {
    Manifest,
    Index,
    ManifestDescriptor,
    IndexDescriptor,
}

/// Annotation prefixes.
const PREFIXES: &[(&str, Target)] = &[
    ("annotation.", Target::Manifest),
    ("annotation-manifest.", Target::Manifest),
    ("annotation-index.", Target::Index),
    (
        "annotation-manifest-descriptor.",
        Target::ManifestDescriptor,
    ),
    ("annotation-index-descriptor.", Target::IndexDescriptor),
];

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
    OptionSpec::repeatable(
        "annotation.KEY",
        "set annotation KEY in every image manifest",
    ),
    OptionSpec::repeatable("annotation-manifest.KEY", "same as annotation.KEY"),
    OptionSpec::repeatable(
        "annotation-index.KEY",
        "set annotation KEY in the image index (the image must have one)",
    ),
    OptionSpec::repeatable(
        "annotation-manifest-descriptor.KEY",
        "set annotation KEY on the descriptors of the image manifests (in the index, \
         or on the root descriptor of a single-manifest image)",
    ),
    OptionSpec::repeatable(
        "annotation-index-descriptor.KEY",
        "set annotation KEY on the image's entries in index.json",
    ),
];

/// Parses and checks the options: unknown keys, bad values and repeated keys
/// are `invalid-option` errors.
pub fn parse(options: &[(String, String)]) -> Result<Options, Error> {
    let parsed = Parsed::new("oci", SPECS, options)?;
    let mut out = Options {
        tar: parsed.bool("tar", true)?,
        names: parsed.image_names("name")?,
        rewrites: Rewrites::default(),
    };
    // One pass in the order given: annotations keep the user's order.
    for (key, value) in options {
        let Some((target, ann)) = PREFIXES
            .iter()
            .find_map(|(p, t)| key.strip_prefix(p).map(|k| (*t, k)))
        else {
            continue;
        };
        let r = &mut out.rewrites;
        let list = match target {
            Target::Manifest => &mut r.manifest,
            Target::Index => &mut r.index,
            Target::ManifestDescriptor => &mut r.manifest_descriptor,
            Target::IndexDescriptor => &mut r.index_descriptor,
        };
        if list.iter().any(|(k, _)| k == ann) {
            return Err(Error::InvalidOption(format!(
                "annotation \"{ann}\" given more than once (option \"{key}\")"
            )));
        }
        list.push((ann.to_owned(), value.clone()));
    }
    Ok(out)
}
