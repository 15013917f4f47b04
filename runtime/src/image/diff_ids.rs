//! The diff IDs an image's configs give a layer: what its uncompressed tar
//! must hash to (`rootfs.diff_ids`, one per layer of the manifest, in
//! order). Read from the image's own documents, which the runtime has
//! already verified.

use outport_image::Image;
use outport_oci::document::{ImageConfig, Index, Manifest};
use outport_oci::media;

/// How deep an index may nest indexes before the walk stops looking: as
/// deep as the image reader accepts (eight levels), so that no layer it
/// accepts goes unchecked.
const MAX_DEPTH: usize = 8;

/// Largest document read (as `blob.bytes` serves).
const MAX_DOCUMENT: u64 = 16 << 20;

/// Every diff ID a config of `image` gives the layer `digest` (none when no
/// config lists it, e.g. a cache blob). Documents that do not parse are
/// passed over: the image reader checked them, and the layer's digest is
/// verified whatever this finds.
pub fn expected(image: &Image, digest: &str) -> Vec<String> {
    let mut found = Vec::new();
    let root = image.root();
    walk(
        image,
        root.media_type().as_ref(),
        root.digest().as_ref(),
        digest,
        0,
        &mut found,
    );
    found.sort_unstable();
    found.dedup();
    found
}

/// Looks for `layer` under the document `at` (of `media_type`).
fn walk(
    image: &Image,
    media_type: &str,
    at: &str,
    layer: &str,
    depth: usize,
    found: &mut Vec<String>,
) {
    let Some(bytes) = image
        .blob(at)
        .and_then(|blob| blob.read_all(MAX_DOCUMENT).ok())
    else {
        return;
    };
    if media::is_index(media_type) {
        let Ok(index) = serde_json::from_slice::<Index>(&bytes) else {
            return;
        };
        if depth < MAX_DEPTH {
            for child in &index.manifests {
                walk(
                    image,
                    &child.media_type,
                    &child.digest,
                    layer,
                    depth + 1,
                    found,
                );
            }
        }
    } else if media::is_manifest(media_type) {
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
            return;
        };
        let at: Vec<usize> = (manifest.layers.iter().enumerate())
            .filter(|(_, l)| l.digest == layer)
            .map(|(n, _)| n)
            .collect();
        if at.is_empty() {
            return;
        }
        let config = image
            .blob(&manifest.config.digest)
            .and_then(|blob| blob.read_all(MAX_DOCUMENT).ok())
            .and_then(|bytes| serde_json::from_slice::<ImageConfig>(&bytes).ok());
        let diff_ids = config.and_then(|c| c.rootfs).and_then(|r| r.diff_ids);
        let diff_ids = diff_ids.unwrap_or_default();
        found.extend(at.iter().filter_map(|&n| diff_ids.get(n).cloned()));
    }
}
