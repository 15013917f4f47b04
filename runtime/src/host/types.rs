//! `outport:exporter/types`: no host functions, only what the other
//! interfaces share: the runtime's types converted to their WIT forms and
//! the checks on values a guest passes. (Each interface's view implements
//! this interface's `Host`, which turns a `HostError` into its `error`.)

use crate::host::bindings::types::{Descriptor, Platform};

/// Whether `s` is a media type as RFC 6838 names them: `type/subtype`,
/// each 1 to 127 of letters, digits and `!#$&-^_.+`, starting with a letter
/// or digit (parameters after `;` are not allowed in descriptors).
pub(super) fn is_media_type(s: &str) -> bool {
    let name = |part: &str| {
        (1..=127).contains(&part.len())
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(s.split_once('/'), Some((t, sub)) if name(t) && name(sub))
}

/// Converts an OCI descriptor to its WIT form.
pub(crate) fn to_wit(d: &outport_image::Descriptor) -> Descriptor {
    let pairs = |m: Option<&std::collections::HashMap<String, String>>| {
        let mut v: Vec<(String, String)> = m
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size(),
        annotations: pairs(d.annotations().as_ref()),
        platform: d.platform().as_ref().map(|p| Platform {
            architecture: p.architecture().to_string(),
            os: p.os().to_string(),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone().unwrap_or_default(),
            variant: p.variant().clone(),
        }),
        artifact_type: d.artifact_type().as_ref().map(|m| m.to_string()),
        urls: d.urls().clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_media_type;

    #[test]
    fn media_types() {
        for ok in [
            "application/vnd.oci.image.manifest.v1+json",
            "application/octet-stream",
            "text/plain",
        ] {
            assert!(is_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "application",
            "/json",
            "a/",
            "a/b/c",
            "a b/c",
            "a/b;x=1",
            "a/b\n",
        ] {
            assert!(!is_media_type(bad), "{bad}");
        }
    }
}
