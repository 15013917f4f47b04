//! The [`Blob`] type: a descriptor and a handle on its bytes, its
//! constructors, and what it says of itself.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oci_spec::image::Descriptor;

use super::claim::Verifying;
use super::label::Label;
use super::storage::{Data, FileRegion};
use crate::error::Error;

/// One blob of an image: its descriptor and a handle on its bytes.
///
/// Blobs from files are checked against their descriptor's digest as they are
/// streamed ([`Blob::open`], [`Blob::read_all`], [`Blob::copy_to_file`]); once
/// a full read has matched, [`Blob::is_verified`] is true. In-memory blobs
/// are trusted as given.
#[derive(Debug)]
pub struct Blob {
    pub(super) descriptor: Descriptor,
    pub(super) data: Data,
    pub(super) verified: Arc<AtomicBool>,
    /// Which consumer, if any, is verifying the blob right now.
    pub(super) verifying: Arc<Verifying>,
    pub(super) label: Arc<Label>,
}

impl Blob {
    /// A blob whose bytes are `data`; the descriptor's digest and size are
    /// taken as given by the caller, who computed them.
    pub fn new_in_memory(descriptor: Descriptor, data: Arc<[u8]>) -> Blob {
        let label = Label {
            input: "in-memory".to_owned(),
            digest: descriptor.digest().to_string(),
            context: "in-memory blob".to_owned(),
        };
        Blob {
            descriptor,
            data: Data::Memory(data),
            verified: Arc::new(AtomicBool::new(true)),
            verifying: Arc::default(),
            label: Arc::new(label),
        }
    }

    /// An in-memory blob read or synthesised from `input`, named by `context` in messages.
    pub(crate) fn memory_from(
        descriptor: Descriptor,
        data: Arc<[u8]>,
        input: &str,
        context: &str,
    ) -> Blob {
        let mut blob = Blob::new_in_memory(descriptor, data);
        blob.label = Arc::new(Label {
            input: input.to_owned(),
            digest: blob.label.digest.clone(),
            context: context.to_owned(),
        });
        blob
    }

    /// A blob stored in `region` of a file of `input`; `verified` if its digest
    /// was already computed from these bytes.
    pub(crate) fn from_file(
        descriptor: Descriptor,
        region: FileRegion,
        input: &str,
        context: &str,
        verified: bool,
    ) -> Blob {
        let label = Label {
            input: input.to_owned(),
            digest: descriptor.digest().to_string(),
            context: context.to_owned(),
        };
        Blob {
            descriptor,
            data: Data::File(region),
            verified: Arc::new(AtomicBool::new(verified)),
            verifying: Arc::default(),
            label: Arc::new(label),
        }
    }

    /// A blob stored in the file at `path` (a blob file of a directory the
    /// caller read, e.g. a BuildKit cache), verified as it is streamed;
    /// `input` and `context` name it in messages. Fails when the file cannot
    /// be opened or its size is not the descriptor's.
    pub fn from_path(
        descriptor: Descriptor,
        path: &std::path::Path,
        input: &str,
        context: &str,
    ) -> Result<Blob, Error> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Blob::from_open_file(
            descriptor,
            file,
            &path.display().to_string(),
            input,
            context,
        )
    }

    /// A blob stored in the open regular `file` (named `path` in messages),
    /// verified as it is streamed; as [`Blob::from_path`].
    pub fn from_open_file(
        descriptor: Descriptor,
        file: File,
        path: &str,
        input: &str,
        context: &str,
    ) -> Result<Blob, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        if len != descriptor.size() {
            return Err(Error::SizeMismatch {
                input: input.to_owned(),
                digest: descriptor.digest().to_string(),
                context: context.to_owned(),
                expected: descriptor.size(),
                actual: len,
            });
        }
        let region = FileRegion {
            file: Arc::new(file),
            offset: 0,
            len,
        };
        Ok(Blob::from_file(descriptor, region, input, context, false))
    }

    /// The descriptor the blob was first reached by.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The input the blob comes from, for messages.
    pub(crate) fn input_name(&self) -> &str {
        &self.label.input
    }

    /// The blob's size in bytes, as its descriptor says (checked against the
    /// file when the image was opened).
    pub fn size(&self) -> u64 {
        self.descriptor.size()
    }

    /// Whether the blob's digest has been checked (always true in memory).
    pub fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// How many bytes the blob's storage holds (the file or tar entry size).
    pub(crate) fn stored_len(&self) -> u64 {
        match &self.data {
            Data::Memory(bytes) => bytes.len() as u64,
            Data::File(region) => region.len,
            // The fetcher checks the size; a view's is its tar's.
            Data::Deferred(_) | Data::Inflated(_) => self.size(),
        }
    }

    pub(super) fn too_large(&self, limit: u64) -> Error {
        Error::TooLarge {
            input: self.label.input.clone(),
            digest: self.label.digest.clone(),
            context: self.label.context.clone(),
            size: self.size(),
            limit,
        }
    }

    pub(super) fn io_error(&self, source: io::Error) -> Error {
        self.label.io_error(source)
    }
}
