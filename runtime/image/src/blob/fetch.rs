//! Blobs the input does not hold yet (a registry's layers): fetched by a
//! [`Fetch`] the first time a consumer reads one, once however many read
//! it at once, and from then on read from the file the fetch left (the
//! fetch itself, [`Deferred`], is in `storage`).

use std::sync::{Arc, OnceLock};

use oci_spec::image::Descriptor;

use super::handle::Blob;
use super::label::Label;
use super::storage::{Data, Deferred, Fetch};
use crate::error::Error;

impl Blob {
    /// A blob of `input` that `fetch` gets the first time it is read;
    /// `context` names it in messages.
    pub(crate) fn deferred(
        descriptor: Descriptor,
        fetch: Arc<dyn Fetch>,
        input: &str,
        context: &str,
    ) -> Blob {
        let label = Label {
            input: input.to_owned(),
            digest: descriptor.digest().to_string(),
            context: context.to_owned(),
        };
        let deferred = Deferred {
            descriptor: descriptor.clone(),
            fetch,
            fetched: OnceLock::new(),
        };
        Blob {
            descriptor,
            data: Data::Deferred(Arc::new(deferred)),
            verified: Arc::default(),
            verifying: Arc::default(),
            label: Arc::new(label),
        }
    }

    /// Whether the blob's bytes are here: not a blob still to fetch.
    pub fn is_present(&self) -> bool {
        match &self.data {
            Data::Deferred(deferred) => deferred.fetched.get().is_some_and(Result::is_ok),
            Data::Memory(_) | Data::File(_) | Data::Inflated(_) => true,
        }
    }

    /// Makes the blob's bytes present: a blob still to fetch is fetched now
    /// (blocking: call it off the async threads), or waited for while
    /// another consumer fetches it; a fetch that failed fails every read.
    pub fn fetch(&self) -> Result<(), Error> {
        self.present_data().map(drop)
    }

    /// Where the bytes are once present (fetching them if need be).
    pub(super) fn present_data(&self) -> Result<Data, Error> {
        let Data::Deferred(deferred) = &self.data else {
            return Ok(self.data.clone());
        };
        deferred
            .region(&self.verified)
            .map(Data::File)
            .map_err(|source| self.label.fetch_error(source))
    }
}
