//! The [`Walker`]: visits each blob once from the root, parents reserving
//! their slot before their children, and records what each became.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::rewrites::Rewrites;
use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::Error;
use crate::walk::{MAX_DEPTH, str_field};
use crate::{log, media};

/// A visited blob: its descriptor after rewriting.
#[derive(Clone)]
pub(super) struct Node {
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: u64,
    pub(super) config_digest: Option<String>,
}

pub(super) struct Walker<'a> {
    pub(super) opts: &'a Rewrites,
    /// Slots in walk order; a parent reserves its slot before its children.
    pub(super) slots: Vec<Option<Blob>>,
    pub(super) visited: BTreeMap<String, Node>,
}

impl<'a> Walker<'a> {
    /// A walker applying `opts`, nothing visited yet.
    pub(super) fn new(opts: &'a Rewrites) -> Self {
        Walker {
            opts,
            slots: Vec::new(),
            visited: BTreeMap::new(),
        }
    }
}

impl Walker<'_> {
    /// Every blob to write, in walk order, each digest once.
    pub(super) fn into_blobs(self) -> Vec<Blob> {
        let mut seen = BTreeSet::new();
        self.slots
            .into_iter()
            .flatten()
            .filter(|b| seen.insert(b.descriptor().digest))
            .collect()
    }

    /// Visits the blob `digest` of type `media_type`; `annotate` says whether
    /// manifest annotations apply to it (not to attestation manifests).
    pub(super) fn visit(
        &mut self,
        media_type: &str,
        digest: &str,
        is_root: bool,
        annotate: bool,
        depth: usize,
    ) -> Result<Node, Error> {
        if let Some(node) = self.visited.get(digest) {
            return Ok(node.clone());
        }
        if depth > MAX_DEPTH {
            return Err(Error::InvalidImage(format!(
                "indexes nest deeper than {MAX_DEPTH} levels at {digest}"
            )));
        }
        let blob = image::get_blob(digest)?;
        let slot = self.slots.len();
        self.slots.push(None);
        let (blob, media_type, config_digest) = if media::is_index(media_type) {
            let (blob, media_type) = self.index(blob, media_type, digest, is_root, depth)?;
            (blob, media_type, None)
        } else if media::is_manifest(media_type) {
            self.manifest(blob, media_type, digest, annotate)?
        } else {
            (blob, media_type.to_owned(), None)
        };
        let desc = blob.descriptor();
        let node = Node {
            media_type,
            digest: desc.digest,
            size: desc.size,
            config_digest,
        };
        self.slots[slot] = Some(blob);
        self.visited.insert(digest.to_owned(), node.clone());
        Ok(node)
    }

    /// A layer or config: written as is. A missing blob whose descriptor has
    /// `urls` (a foreign layer) is skipped.
    pub(super) fn leaf(&mut self, desc: &Map<String, Value>, owner: &str) -> Result<(), Error> {
        let digest = str_field(desc, "digest", owner)?;
        if self.visited.contains_key(digest) {
            return Ok(());
        }
        let blob = match image::get_blob(digest) {
            Ok(b) => b,
            Err(e) => {
                let foreign = desc
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    return Err(e);
                }
                log::debug(&format!(
                    "skipping foreign layer {digest} (not in the image)"
                ));
                return Ok(());
            }
        };
        self.add_leaf(digest, blob);
        Ok(())
    }

    /// Records `blob` as what `digest` became, to be written.
    pub(super) fn add_leaf(&mut self, digest: &str, blob: Blob) {
        let d = blob.descriptor();
        self.visited.insert(
            digest.to_owned(),
            Node {
                media_type: d.media_type,
                digest: d.digest,
                size: d.size,
                config_digest: None,
            },
        );
        self.slots.push(Some(blob));
    }

    /// The media type `media_type` should have in the output: the family
    /// asked by `oci-mediatypes`, else its own.
    pub(super) fn target_type(&self, media_type: &str, what: &str) -> Result<String, Error> {
        match self.opts.oci_media_types {
            None => Ok(media_type.to_owned()),
            Some(oci) => media::convert(media_type, oci)
                .map(str::to_owned)
                .map_err(|e| Error::Unsupported(format!("{what}: {e}"))),
        }
    }
}
