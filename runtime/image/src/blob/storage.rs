//! Where a blob's bytes are: a byte range of an open file, memory, not
//! here yet (a [`Fetch`] gets them on first read), or a compressed layer's
//! tar decompressed where read.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use oci_spec::image::Descriptor;

use super::inflated::Inflated;
pub(crate) use super::region::FileRegion;

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub(super) enum Data {
    Memory(Arc<[u8]>),
    File(FileRegion),
    /// Not here yet: fetched on first read.
    Deferred(Arc<Deferred>),
    /// A compressed layer's tar, decompressed again where read (a view).
    Inflated(Arc<Inflated>),
}

/// Why a fetch failed: the fetcher's own error, shared by every consumer
/// of the blob.
pub type FetchError = Arc<dyn std::error::Error + Send + Sync>;

/// Gets the bytes of blobs an input only names (e.g. a registry's layers).
pub trait Fetch: Send + Sync + std::fmt::Debug {
    /// Fetches the blob of `descriptor` (blocking; called off the async
    /// threads) and returns a file holding exactly its bytes, which the
    /// fetcher has checked against the descriptor's digest and size.
    fn fetch(&self, descriptor: &Descriptor) -> Result<File, FetchError>;
}

/// A blob to fetch on first use, and the outcome once fetched.
#[derive(Debug)]
pub(crate) struct Deferred {
    pub(super) descriptor: Descriptor,
    pub(super) fetch: Arc<dyn Fetch>,
    pub(super) fetched: OnceLock<Result<FileRegion, FetchError>>,
}

impl Deferred {
    /// The file region of the blob, fetched by the first caller (the
    /// others wait for it); marks the blob `verified` once fetched.
    pub(super) fn region(&self, verified: &AtomicBool) -> Result<FileRegion, FetchError> {
        let fetched = self.fetched.get_or_init(|| {
            let file = self.fetch.fetch(&self.descriptor)?;
            // The fetcher checked the bytes against the digest.
            verified.store(true, Ordering::Release);
            Ok(FileRegion {
                file: Arc::new(file),
                offset: 0,
                len: self.descriptor.size(),
            })
        });
        fetched.clone()
    }
}
