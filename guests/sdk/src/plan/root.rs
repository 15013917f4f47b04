//! The [`Plan`] and its [`Root`]: the walk from the input's root, and the
//! root descriptor's annotations.

use std::collections::BTreeMap;

use super::rewrites::{IMAGE_NAME, REF_NAME, Rewrites};
use super::walker::Walker;
use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::{Descriptor, Error};
use crate::media;

/// The exported image's root descriptor, after rewriting.
#[derive(Debug, Clone)]
pub struct Root {
    /// Media type (an index or a manifest).
    pub media_type: String,
    /// Digest, new when the root was rewritten.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Descriptor annotations (without image names), sorted by key, as Go
    /// marshals a map.
    pub annotations: BTreeMap<String, String>,
    /// Artifact type, for artifact manifests.
    pub artifact_type: Option<String>,
}

/// What to write: the root and every blob reachable from it.
pub struct Plan {
    /// The root descriptor.
    pub root: Root,
    /// The config digest, when the root is a single image manifest.
    pub config_digest: Option<String>,
    /// Every blob, in walk order (parents before children), each digest once.
    pub blobs: Vec<Blob>,
}

impl Plan {
    /// Walks the whole image (from `image::root`) and plans the output.
    pub fn image(rewrites: &Rewrites) -> Result<Plan, Error> {
        plan(image::root(), rewrites)
    }

    /// Walks the image from `root` (for example one manifest of an index,
    /// chosen with [`crate::walk::find_platform`]) and plans the output.
    pub fn from_root(root: Descriptor, rewrites: &Rewrites) -> Result<Plan, Error> {
        plan(root, rewrites)
    }
}

fn plan(input_root: Descriptor, opts: &Rewrites) -> Result<Plan, Error> {
    let root_is_index = media::is_index(&input_root.media_type);
    if !root_is_index && !opts.index.is_empty() {
        return Err(Error::InvalidOption(format!(
            "option \"annotation-index.{}\": the image has no index (its root is {})",
            opts.index[0].0, input_root.media_type
        )));
    }
    let mut walker = Walker::new(opts);
    let node = walker.visit(&input_root.media_type, &input_root.digest, true, true, 0)?;
    let annotations = root_annotations(input_root.annotations, root_is_index, opts);
    Ok(Plan {
        root: Root {
            media_type: node.media_type,
            digest: node.digest,
            size: node.size,
            annotations,
            artifact_type: input_root.artifact_type,
        },
        config_digest: if root_is_index {
            None
        } else {
            node.config_digest
        },
        blobs: walker.into_blobs(),
    })
}

/// The root descriptor's annotations: the input's without image names,
/// then the asked descriptor annotations.
fn root_annotations(
    input: Vec<(String, String)>,
    root_is_index: bool,
    opts: &Rewrites,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = input
        .into_iter()
        .filter(|(k, _)| k != IMAGE_NAME && k != REF_NAME)
        .collect();
    if !root_is_index {
        annotations.extend(opts.manifest_descriptor.iter().cloned());
    }
    annotations.extend(opts.index_descriptor.iter().cloned());
    annotations
}
