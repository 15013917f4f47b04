//! SHA-256 digests in the `sha256:<hex>` form used by OCI descriptors.

use sha2::{Digest as _, Sha256};

/// The digest of `data` as `sha256:<64 lowercase hex>`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Whether `digest` is `sha256:` followed by exactly 64 lowercase hex digits.
///
/// This is the only digest form the reader accepts; it also guarantees that a
/// digest used to build a `blobs/sha256/<hex>` path cannot escape the input.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The hex part of a digest checked by [`is_sha256_digest`].
pub(crate) fn hex_part(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
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
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}
