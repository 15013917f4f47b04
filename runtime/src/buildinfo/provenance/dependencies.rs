//! Build-info sources as SLSA resource descriptors, images as package URLs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::buildinfo::sources::{BuildInfo, Source, TYPE_GIT, TYPE_IMAGE, normalize_image_ref};

/// An SLSA `ResourceDescriptor`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dependency {
    /// A URL, or a package URL for an image.
    pub uri: String,
    /// `{algorithm: hex}` of the pin; absent for an unpinned source.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

/// The sources of `info` and of its dependencies, as SLSA resource
/// descriptors, each once, in the build info's order.
pub fn dependencies(info: &BuildInfo) -> Vec<Dependency> {
    fn walk(info: &BuildInfo, out: &mut Vec<Dependency>) {
        for source in &info.sources {
            let d = dependency(source);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        for dep in info.deps.values() {
            walk(dep, out);
        }
    }
    let mut out = Vec::new();
    walk(info, &mut out);
    out
}

/// One build-info source (already redacted) as an SLSA resource
/// descriptor, as BuildKit converts its sources: an image as a package URL
/// (`pkg:docker/…`), a git repository with its commit as `sha1`, an HTTP
/// file with its checksum.
pub fn dependency(source: &Source) -> Dependency {
    let uri = if source.kind == TYPE_IMAGE {
        image_purl(&source.reference, None)
    } else {
        source.reference.clone()
    };
    let mut digest = BTreeMap::new();
    let pin = source.pin.trim();
    if let Some((algorithm, hex)) = pin.split_once(':') {
        digest.insert(algorithm.to_string(), hex.to_string());
    } else if source.kind == TYPE_GIT && pin.len() == 64 {
        digest.insert("sha256".to_string(), pin.to_string());
    } else if source.kind == TYPE_GIT && !pin.is_empty() {
        digest.insert("sha1".to_string(), pin.to_string());
    } else if !pin.is_empty() {
        digest.insert("sha256".to_string(), pin.to_string());
    }
    Dependency { uri, digest }
}

/// An image reference as a package URL, as BuildKit writes them:
/// `pkg:docker/<familiar name>@<tag>?digest=…&platform=os%2Farch`
/// (`alpine:3.19` → `pkg:docker/alpine@3.19`; a reference with neither
/// tag nor digest is `@latest`).
pub fn image_purl(reference: &str, platform: Option<&str>) -> String {
    let full = normalize_image_ref(reference);
    let parts = outport_oci::reference::split(&full);
    let (tag, digest) = (parts.tag, parts.digest);
    let name = parts.name();
    let familiar = outport_oci::reference::familiar(&name);
    let path: Vec<String> = familiar.split('/').map(purl_escape).collect();
    let mut purl = format!("pkg:docker/{}", path.join("/"));
    match (tag, digest) {
        (Some(t), _) => purl = format!("{purl}@{}", purl_escape(t)),
        (None, None) => purl.push_str("@latest"),
        (None, Some(_)) => {}
    }
    let mut qualifiers = Vec::new();
    if let Some(d) = digest {
        qualifiers.push(format!("digest={}", purl_escape(d)));
    }
    if let Some(p) = platform {
        qualifiers.push(format!("platform={}", purl_escape(p)));
    }
    if !qualifiers.is_empty() {
        purl = format!("{purl}?{}", qualifiers.join("&"));
    }
    purl
}

/// Percent-encodes everything but unreserved characters.
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
