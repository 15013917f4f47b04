//! SHA-256 digests computed as bytes stream, in the form of
//! [`outport_oci::Sha256Digest`] (`sha256:` and 64 lowercase hex digits),
//! the only form the reader accepts.

use outport_oci::Sha256Digest;
use sha2::{Digest as _, Sha256};

/// The digest of `data` as `sha256:<64 lowercase hex>`.
pub fn sha256_digest(data: &[u8]) -> String {
    Sha256Digest::from_hash(Sha256::digest(data).into()).into_string()
}

/// Whether `digest` is `sha256:` followed by exactly 64 lowercase hex digits.
///
/// This is the only digest form the reader accepts; it also guarantees that a
/// digest used to build a `blobs/sha256/<hex>` path cannot escape the input.
pub fn is_sha256_digest(digest: &str) -> bool {
    outport_oci::digest::is_sha256(digest)
}

/// An incremental SHA-256 that yields `sha256:<hex>`.
#[derive(Default, Clone)]
pub(crate) struct Hasher(Sha256);

impl Hasher {
    /// Feeds bytes.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed so far.
    pub(crate) fn finish(self) -> String {
        Sha256Digest::from_hash(self.0.finalize().into()).into_string()
    }
}
