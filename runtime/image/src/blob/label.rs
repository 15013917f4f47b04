//! What messages about a blob name, and the error of a failed read.

use std::io;

use crate::error::Error;

/// What messages about a blob name: the input, the digest and what refers to it.
#[derive(Debug)]
pub(super) struct Label {
    pub(super) input: String,
    pub(super) digest: String,
    pub(super) context: String,
}

impl Label {
    /// An I/O error while reading this blob.
    pub(super) fn io_error(&self, source: io::Error) -> Error {
        Error::BlobIo {
            input: self.input.clone(),
            digest: self.digest.clone(),
            context: self.context.clone(),
            source,
        }
    }

    /// A failed fetch of this blob.
    pub(super) fn fetch_error(&self, source: super::storage::FetchError) -> Error {
        Error::Fetch {
            input: self.input.clone(),
            digest: self.digest.clone(),
            context: self.context.clone(),
            source,
        }
    }
}
