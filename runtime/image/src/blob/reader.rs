//! Reading a blob: the streaming [`BlobReader`] (plain or sharing
//! verification with concurrent consumers) and the whole blob in memory.

use std::io::{self, Read};

use super::handle::Blob;
use super::stream::Stream;
use crate::error::Error;

impl Blob {
    /// A reader over the blob's bytes that verifies size and digest at the
    /// end; a blob still to fetch is fetched by the first read (blocking).
    pub fn open(&self) -> BlobReader {
        BlobReader {
            stream: self.stream(),
            failed: None,
        }
    }

    /// Like [`Blob::open`], but shares verification with concurrent
    /// consumers: while another consumer is hashing this blob, it blocks
    /// until that one is done, and then reads without hashing. So however
    /// many consumers read a blob at once, its bytes are hashed (and read
    /// from disk) once. A blob still to fetch is fetched first (a failed
    /// fetch fails the first read). May block: call it off the async
    /// executor.
    pub fn open_shared(&self) -> BlobReader {
        // A failure is met again by the reader's first read.
        let _ = self.fetch();
        let claim = self.claim_or_wait();
        BlobReader {
            stream: Stream {
                claim,
                ..self.stream()
            },
            failed: None,
        }
    }

    /// The whole blob, verified; an error if it is larger than `limit` bytes.
    pub fn read_all(&self, limit: u64) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if size > limit {
            return Err(Error::TooLarge {
                input: self.label.input.clone(),
                digest: self.label.digest.clone(),
                context: self.label.context.clone(),
                size,
                limit,
            });
        }
        let len = usize::try_from(size).map_err(|_| self.too_large(limit))?;
        self.fetch()?;
        let mut out = vec![0; len];
        let mut stream = self.stream();
        let mut filled = 0;
        while filled < len {
            filled += stream.read(&mut out[filled..])?;
        }
        stream.finish_if_empty()?;
        Ok(out)
    }
}

/// Streams a blob: `Read` with positioned reads in the caller's chunk size,
/// hashing as it goes. When the last byte is read the size and digest are
/// compared with the descriptor; a mismatch, or a file that ends early, is an
/// `io::Error` of kind `InvalidData` carrying the one-line message. A
/// successful full read marks the blob verified.
pub struct BlobReader {
    stream: Stream,
    failed: Option<String>,
}

impl BlobReader {
    /// Moves `n` bytes on without handing them out (fewer at the blob's
    /// end); returns how many. The bytes of a blob still to verify are
    /// read and hashed; those of a verified one, or of a view, are not
    /// read at all. At the end, as [`Read::read`], the blob is verified.
    pub fn skip(&mut self, n: u64) -> io::Result<u64> {
        self.check_failed()?;
        let skipped = self.stream.skip(n);
        skipped.map_err(|e| self.fail(e))
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some(message) => Err(io::Error::new(io::ErrorKind::InvalidData, message.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: Error) -> io::Error {
        self.failed = Some(e.to_string());
        let kind = match &e {
            Error::BlobIo { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_failed()?;
        let read = self.stream.read(buf);
        read.map_err(|e| self.fail(e))
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("digest", &self.stream.label.digest)
            .field("pos", &self.stream.pos)
            .field("size", &self.stream.size)
            .finish()
    }
}
