//! The exporter's options: what `describe` lists and what `validate` accepts.

use crate::bindings::outport::exporter::types::{Error, OptionInfo};
use crate::reference;

/// Annotations given as `PREFIX.KEY=VALUE`, in the order the user wrote them.
pub type Annotations = Vec<(String, String)>;

/// Options after validation.
#[derive(Debug, Default)]
pub struct Options {
    /// Write a tarball (true, the default) or a directory.
    pub tar: bool,
    /// Image names, normalized (`alpine` → `docker.io/library/alpine:latest`).
    pub names: Vec<String>,
    /// `annotation.KEY` / `annotation-manifest.KEY`: set in every image manifest.
    pub manifest: Annotations,
    /// `annotation-index.KEY`: set in the root index.
    pub index: Annotations,
    /// `annotation-manifest-descriptor.KEY`: set on manifest descriptors.
    pub manifest_descriptor: Annotations,
    /// `annotation-index-descriptor.KEY`: set on the `index.json` entries.
    pub index_descriptor: Annotations,
}

/// Which annotation list an option prefix fills.
#[derive(Clone, Copy)]
enum Target {
    Manifest,
    Index,
    ManifestDescriptor,
    IndexDescriptor,
}

/// Annotation prefixes, with the canonical spelling used in messages.
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

/// The options listed by `describe`.
pub fn info() -> Vec<OptionInfo> {
    let opt = |key: &str, help: &str, default: Option<&str>, repeatable: bool| OptionInfo {
        key: key.to_owned(),
        help: help.to_owned(),
        default_value: default.map(str::to_owned),
        repeatable,
    };
    vec![
        opt(
            "tar",
            "write the OCI layout as a tarball (true) or as a directory (false)",
            Some("true"),
            false,
        ),
        opt(
            "name",
            "image name to record in index.json (io.containerd.image.name and \
             org.opencontainers.image.ref.name); repeat or separate with commas for several",
            None,
            true,
        ),
        opt(
            "annotation.KEY",
            "set annotation KEY in every image manifest",
            None,
            true,
        ),
        opt(
            "annotation-manifest.KEY",
            "same as annotation.KEY",
            None,
            true,
        ),
        opt(
            "annotation-index.KEY",
            "set annotation KEY in the image index (the image must have one)",
            None,
            true,
        ),
        opt(
            "annotation-manifest-descriptor.KEY",
            "set annotation KEY on the descriptors of the image manifests (in the index, \
             or on the root descriptor of a single-manifest image)",
            None,
            true,
        ),
        opt(
            "annotation-index-descriptor.KEY",
            "set annotation KEY on the image's entries in index.json",
            None,
            true,
        ),
    ]
}

fn invalid(msg: String) -> Error {
    Error::InvalidOption(msg)
}

/// Parses and checks the options: unknown keys, bad values and repeated keys
/// are `invalid-option` errors.
pub fn parse(options: &[(String, String)]) -> Result<Options, Error> {
    let mut out = Options {
        tar: true,
        ..Options::default()
    };
    let mut seen_tar = false;
    for (key, value) in options {
        if key == "tar" {
            if seen_tar {
                return Err(invalid("option \"tar\" given more than once".into()));
            }
            seen_tar = true;
            out.tar = match value.as_str() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(invalid(format!(
                        "invalid option \"tar\": expected true or false, got \"{other}\""
                    )));
                }
            };
        } else if key == "name" {
            for name in value.split(',').map(str::trim) {
                let normalized = reference::normalize(name)
                    .map_err(|e| invalid(format!("invalid option \"name\": {e}")))?;
                if !out.names.contains(&normalized) {
                    out.names.push(normalized);
                }
            }
        } else if let Some((prefix, target, ann)) = PREFIXES
            .iter()
            .find_map(|(p, t)| key.strip_prefix(p).map(|k| (p, *t, k)))
        {
            if ann.is_empty() {
                return Err(invalid(format!(
                    "invalid option \"{key}\": missing annotation key after \"{prefix}\""
                )));
            }
            let list = match target {
                Target::Manifest => &mut out.manifest,
                Target::Index => &mut out.index,
                Target::ManifestDescriptor => &mut out.manifest_descriptor,
                Target::IndexDescriptor => &mut out.index_descriptor,
            };
            if list.iter().any(|(k, _)| k == ann) {
                return Err(invalid(format!(
                    "annotation \"{ann}\" given more than once (option \"{key}\")"
                )));
            }
            list.push((ann.to_owned(), value.clone()));
        } else {
            return Err(invalid(format!("unknown option \"{key}\"")));
        }
    }
    Ok(out)
}
