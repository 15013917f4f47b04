//! BuildKit's annotation options (`annotation.KEY`,
//! `annotation-manifest.KEY`, `annotation-index.KEY`,
//! `annotation-manifest-descriptor.KEY`, `annotation-index-descriptor.KEY`),
//! shared by the exporters that write image manifests and indexes: their
//! [`SPECS`] for `describe`/`validate`, and [`rewrites`] turning them into
//! the [`Rewrites`] a [`Plan`](crate::Plan) applies.

use crate::options::OptionSpec;
use crate::{Error, Rewrites};

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

/// The annotation options, as `describe` lists them.
pub const SPECS: [OptionSpec; 5] = [
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

/// The annotation options among `options`, in the order given (the
/// user's order is kept); an annotation given twice is an
/// `invalid-option` error.
pub fn rewrites(options: &[(String, String)]) -> Result<Rewrites, Error> {
    let mut out = Rewrites::default();
    for (key, value) in options {
        let Some((target, ann)) = PREFIXES
            .iter()
            .find_map(|(p, t)| key.strip_prefix(p).map(|k| (*t, k)))
        else {
            continue;
        };
        let list = match target {
            Target::Manifest => &mut out.manifest,
            Target::Index => &mut out.index,
            Target::ManifestDescriptor => &mut out.manifest_descriptor,
            Target::IndexDescriptor => &mut out.index_descriptor,
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
