//! outport-image: reads a container image from disk, verifies it and presents
//! it as a graph of blobs a host can stream from.
//!
//! [`open`] takes the user's `INPUT[:REF]` string and returns an [`Image`]:
//! its root [`Descriptor`] (an index or a manifest) and every [`Blob`]
//! reachable from it. A blob is streamed with a [`BlobReader`]
//! ([`Blob::open`]), read whole ([`Blob::read_all`]) or written into a file
//! ([`Blob::copy_to_file`]); each of these checks the size and SHA-256
//! digest as the bytes pass. Every failure is an [`Error`] whose message is
//! one line naming the file or blob and the problem.
//!
//! Inputs:
//! - an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`);
//! - an OCI layout tarball (oci-archive), an uncompressed tar: it is indexed
//!   once and never extracted, each blob being a byte range of the archive;
//! - a `docker save` tarball: Docker 25+ saves carry an OCI layout, which is
//!   preferred; legacy saves (`manifest.json` only) get a synthesised OCI
//!   manifest whose layer digests are the config's `rootfs.diff_ids`.
//!
//! `REF` chooses one image of an input holding several: a name
//! (`org.opencontainers.image.ref.name`, `io.containerd.image.name`, a
//! docker RepoTag; a full name `docker.io/library/foo:1`, `foo:1`, or a bare
//! tag `1` when unambiguous) or a digest `sha256:<hex>` of an `index.json`
//! entry (of the config, for legacy docker saves).
//!
//! Before an image is returned, every index, manifest and config reachable
//! from the root is read, digest-checked and parsed; media types must be
//! known, and every referenced blob must exist with its descriptor's size.
//! Layers are verified as they are streamed.

#![warn(missing_docs)]

mod archive;
mod blob;
mod chunk;
mod convert;
mod digest;
mod docker;
mod error;
mod layout;
mod pieces;
mod select;
mod source;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

pub use oci_spec::image::Descriptor;
use oci_spec::image::MediaType;

pub use blob::{Blob, BlobReader, Fetch, FetchError, Ranges};
pub use chunk::{CHUNK_SIZE, Chunk};
pub use convert::{
    Budget, Compression, ConvertOptions, Converted, Converter, LevelError, MAX_PAX_HEADER,
};
pub use digest::{is_sha256_digest, sha256_digest};
pub use error::Error;
pub use pieces::{SmallWrites, WRITE_SIZE, write_all_at};

use source::Source;
use validate::Walker;

/// Opens and validates the image named by `input`, `INPUT[:REF]`.
///
/// If the whole string exists as a path it is the input, with no reference;
/// otherwise it is split at the first `:` whose left part exists. Without a
/// reference, an input holding one image yields it, an `index.json` listing
/// only unnamed platform manifests yields that index as the root, and
/// anything else is an error listing the images to choose from.
pub fn open(input: &str) -> Result<Image, Error> {
    let split = select::split_input(input)?;
    let source = Source::open(&split.path, &split.display)?;
    load(&source, split.reference.as_deref(), input, None)
}

/// Opens and validates the image at `path` (a directory or an archive),
/// choosing it by `reference` as [`open`] does; `display` names the input
/// in messages and as [`Image::name`]. Nothing is split off the path.
pub fn open_path(path: &Path, display: &str, reference: Option<&str>) -> Result<Image, Error> {
    let source = Source::open(path, display)?;
    load(&source, reference, display, None)
}

/// Like [`open_path`], for a layout that holds every index, manifest and
/// config of the image but not necessarily its layers: a layer missing
/// from `blobs/sha256/` is fetched by `fetch` the first time a consumer
/// reads it (see [`Blob::fetch`]), never before.
pub fn open_path_fetching(
    path: &Path,
    display: &str,
    reference: Option<&str>,
    fetch: Arc<dyn Fetch>,
) -> Result<Image, Error> {
    let source = Source::open(path, display)?;
    load(&source, reference, display, Some(fetch))
}

/// Opens and validates the tar archive (OCI archive or docker save) that
/// `file` holds, e.g. an unlinked spool of a stream; `display` names it.
/// The file is read by offset, never extracted, and kept open by the blobs.
pub fn open_file(file: File, display: &str, reference: Option<&str>) -> Result<Image, Error> {
    let source = Source::from_file(file, display)?;
    load(&source, reference, display, None)
}

/// Chooses the image of `source` and walks it. A docker save whose
/// `index.json` lists no image (Docker 25+ saving an untagged image writes
/// `"manifests": null`) is read through its `manifest.json`.
fn load(
    source: &Source,
    reference: Option<&str>,
    name: &str,
    fetch: Option<Arc<dyn Fetch>>,
) -> Result<Image, Error> {
    let docker = docker::is_docker_save(source)?;
    let chosen = if layout::is_layout(source)? && !(docker && layout::lists_nothing(source)?) {
        layout::load(source, reference)?
    } else if docker {
        docker::load(source, reference)?
    } else {
        return Err(layout::not_an_image(source));
    };
    let graph = Walker::new(source, chosen.known).fetching(fetch).walk(
        &chosen.root,
        &chosen.holder,
        &chosen.context,
    )?;
    Ok(Image {
        name: name.to_owned(),
        root: chosen.root,
        blobs: graph.blobs,
        by_digest: graph.by_digest,
    })
}

/// Largest blob [`Image::verify_ahead`] verifies (16 MiB).
pub const VERIFY_AHEAD_MAX: u64 = 16 << 20;

/// A validated image: the root descriptor and the blobs reachable from it.
///
/// Cloning is cheap and shares every blob (`Arc<Blob>`): a clone can get
/// new blobs and a new root without copying the input's.
#[derive(Clone, Debug)]
pub struct Image {
    name: String,
    root: Descriptor,
    blobs: Vec<Arc<Blob>>,
    by_digest: HashMap<String, usize>,
}

impl Image {
    /// An image made by the caller from `blobs` (shared, not copied) with
    /// `root` the descriptor of one of them, e.g. a build cache presented as
    /// an image manifest. `name` names it in messages.
    pub fn from_blobs(name: &str, root: Descriptor, blobs: Vec<Arc<Blob>>) -> Image {
        let mut image = Image {
            name: name.to_owned(),
            root,
            blobs: Vec::with_capacity(blobs.len()),
            by_digest: HashMap::new(),
        };
        for blob in blobs {
            let digest = blob.descriptor().digest().to_string();
            if !image.by_digest.contains_key(&digest) {
                image.by_digest.insert(digest, image.blobs.len());
                image.blobs.push(blob);
            }
        }
        image
    }

    /// The root descriptor: an image index or an image manifest.
    pub fn root(&self) -> &Descriptor {
        &self.root
    }

    /// The input as the user named it (with its reference, if any), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The blob with `digest` (`sha256:<hex>`), if reachable from the root
    /// (the root included) or inserted with [`Image::insert_blob`].
    pub fn blob(&self, digest: &str) -> Option<&Arc<Blob>> {
        self.by_digest.get(digest).map(|&i| &self.blobs[i])
    }

    /// All blobs, in the order the validation walk found them (the root
    /// first), then inserted ones.
    pub fn blobs(&self) -> impl Iterator<Item = &Arc<Blob>> {
        self.blobs.iter()
    }

    /// Verifies every blob of at most [`VERIFY_AHEAD_MAX`] bytes not
    /// verified yet, one after another on the calling thread, skipping
    /// those another consumer is verifying (see [`Blob::verify_if_idle`]);
    /// returns when done or once `stop` is set. `next` is the index of the
    /// next blob to visit: threads sharing it split the blobs between them. Larger blobs are left to
    /// their consumers, whose copies overlap reading and hashing within
    /// the blob (one thread here would read, then hash).
    pub fn verify_ahead(
        &self,
        next: &std::sync::atomic::AtomicUsize,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::Relaxed) {
            let Some(blob) = self.blobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if blob.size() <= VERIFY_AHEAD_MAX {
                blob.verify_if_idle(stop);
            }
        }
    }

    /// Adds an in-memory blob (e.g. a rewritten config) and returns its
    /// descriptor, digest and size computed here. If a blob with the same
    /// digest is already present it is kept, and the descriptor returned
    /// carries `media_type`.
    pub fn insert_blob(&mut self, media_type: &str, data: Vec<u8>) -> Descriptor {
        let digest = sha256_digest(&data);
        // A digest we have just computed is always a valid sha256 digest.
        let parsed: oci_spec::image::Digest =
            digest.parse().expect("a computed sha256 digest parses");
        let descriptor = Descriptor::new(MediaType::from(media_type), data.len() as u64, parsed);
        if !self.by_digest.contains_key(&digest) {
            let blob = Blob::new_in_memory(descriptor.clone(), Arc::from(data));
            self.by_digest.insert(digest, self.blobs.len());
            self.blobs.push(Arc::new(blob));
        }
        descriptor
    }

    /// Replaces the root descriptor (after rewriting an index or manifest);
    /// its blob should have been added with [`Image::insert_blob`].
    pub fn set_root(&mut self, root: Descriptor) {
        self.root = root;
    }
}
