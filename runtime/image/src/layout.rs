//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`), read
//! from a directory or an archive alike through [`Source`]: chooses the root
//! descriptor among the entries of `index.json`.

use std::sync::Arc;

use oci_spec::image::{Descriptor, MediaType};
use serde_json::Value;

use crate::blob::Blob;
use crate::digest::sha256_digest;
use crate::error::Error;
use crate::select::{self, Candidate, short_name};
use crate::source::Source;
use crate::validate::{
    INDEX_TYPES, JSON_LIMIT, MANIFEST_TYPES, array_field, parse_descriptor, parse_json,
};

/// Annotation naming an image in containerd and Docker 25+ saves.
pub(crate) use outport_oci::document::IMAGE_NAME as CONTAINERD_NAME;
/// Annotation naming an image in an OCI layout.
pub(crate) use outport_oci::document::REF_NAME;

/// The image chosen in an input, ready for the validation walk.
#[derive(Debug)]
pub(crate) struct Chosen {
    /// The root descriptor (index or manifest).
    pub(crate) root: Descriptor,
    /// Blobs prepared outside `blobs/sha256/` (in memory or located), with their names.
    pub(crate) known: Vec<(Blob, String)>,
    /// The file that holds the root descriptor, for messages.
    pub(crate) holder: String,
    /// How messages describe the root.
    pub(crate) context: String,
}

/// Whether the source looks like an OCI layout.
pub(crate) fn is_layout(source: &Source) -> Result<bool, Error> {
    Ok(source.locate("index.json")?.is_some())
}

/// Whether `index.json` lists no image at all (`"manifests": null` or
/// `[]`, as Docker 25+ writes when saving an untagged image). A file that
/// does not parse is left to [`load`] to report.
pub(crate) fn lists_nothing(source: &Source) -> Result<bool, Error> {
    let Some(bytes) = source.read("index.json", JSON_LIMIT)? else {
        return Ok(false);
    };
    let Ok(index) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(false);
    };
    Ok(match index.get("manifests") {
        Some(Value::Null) => true,
        Some(Value::Array(entries)) => entries.is_empty(),
        _ => false,
    })
}

/// Reads `index.json` and chooses the root by `reference` (see the crate docs).
pub(crate) fn load(source: &Source, reference: Option<&str>) -> Result<Chosen, Error> {
    check_layout_file(source)?;
    let holder = source.member_display("index.json");
    let Some(bytes) = source.read("index.json", JSON_LIMIT)? else {
        return Err(not_an_image(source));
    };
    let index = parse_json(&bytes, &holder)?;
    let index_type = match index.get("mediaType") {
        None | Some(Value::Null) => INDEX_TYPES[0].to_owned(),
        Some(Value::String(t)) if INDEX_TYPES.contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return Err(Error::invalid(
                &holder,
                format!("mediaType {other} is not an image index"),
            ));
        }
    };
    let mut entries = Vec::new();
    for (i, entry) in array_field(&index, "manifests", &holder)?
        .iter()
        .enumerate()
    {
        let context = format!("entry {} of index.json", i + 1);
        entries.push(parse_descriptor(entry, &holder, &context)?);
    }
    let candidates: Vec<Candidate> = entries.iter().map(candidate).collect();
    let input = source.display();

    let chosen = match reference {
        Some(reference) => Some(select::choose(input, &candidates, reference)?),
        None if entries.len() == 1 => Some(0),
        None if entries.is_empty() => {
            return Err(Error::NotAnImage {
                path: holder,
                reason: "index.json lists no images".to_owned(),
            });
        }
        None if is_multi_platform(&entries) => None,
        None => return Err(select::ambiguous(input, &candidates)),
    };
    if let Some(i) = chosen {
        let context = match reference {
            Some(reference) => format!("image {reference} of index.json"),
            None => "image of index.json".to_owned(),
        };
        return Ok(Chosen {
            root: entries.swap_remove(i),
            known: Vec::new(),
            holder,
            context,
        });
    }

    // index.json itself is a multi-platform index: it is the root.
    let context = "index.json".to_owned();
    let root = Descriptor::new(
        MediaType::from(index_type.as_str()),
        bytes.len() as u64,
        oci_digest(&sha256_digest(&bytes), &holder)?,
    );
    let blob = Blob::memory_from(root.clone(), Arc::from(bytes), input, &context);
    Ok(Chosen {
        root,
        known: vec![(blob, holder.clone())],
        holder,
        context,
    })
}

/// The error for an input with neither `index.json` nor `manifest.json`.
pub(crate) fn not_an_image(source: &Source) -> Error {
    Error::NotAnImage {
        path: source.display().to_owned(),
        reason: "no index.json or manifest.json".to_owned(),
    }
}

/// Converts a digest we computed into the `oci-spec` type.
pub(crate) fn oci_digest(digest: &str, name: &str) -> Result<oci_spec::image::Digest, Error> {
    digest
        .parse()
        .map_err(|e| Error::invalid(name, format!("digest {digest}: {e}")))
}

/// Checks `oci-layout`, if present: `{"imageLayoutVersion": "1.x.y"}`.
fn check_layout_file(source: &Source) -> Result<(), Error> {
    let name = source.member_display("oci-layout");
    let Some(bytes) = source.read("oci-layout", JSON_LIMIT)? else {
        return Ok(());
    };
    let value = parse_json(&bytes, &name)?;
    match value.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(version) if version.starts_with("1.") => Ok(()),
        Some(version) => Err(Error::invalid(
            name,
            format!("unsupported imageLayoutVersion \"{version}\""),
        )),
        None => Err(Error::MalformedJson {
            path: name,
            message: "missing field `imageLayoutVersion`".to_owned(),
        }),
    }
}

/// Several unnamed manifests each for a platform: index.json is their index.
fn is_multi_platform(entries: &[Descriptor]) -> bool {
    entries.iter().all(|d| {
        let named = d
            .annotations()
            .as_ref()
            .is_some_and(|a| a.contains_key(REF_NAME) || a.contains_key(CONTAINERD_NAME));
        !named
            && d.platform().is_some()
            && MANIFEST_TYPES.contains(&d.media_type().to_string().as_str())
    })
}

/// What a reference may match for an entry of index.json.
fn candidate(desc: &Descriptor) -> Candidate {
    let annotations = desc.annotations().as_ref();
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let ref_name = get(REF_NAME);
    let containerd = get(CONTAINERD_NAME);
    let label = containerd
        .map(short_name)
        .or(ref_name)
        .map_or_else(|| desc.digest().to_string(), str::to_owned);
    let mut candidate = Candidate::new(label);
    for name in [ref_name, containerd].into_iter().flatten() {
        candidate.add_name(name);
    }
    candidate.add_digest(desc.digest().as_ref());
    candidate
}
