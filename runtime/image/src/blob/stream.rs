//! The verifying cursor every consumer of a blob reads through: positioned
//! reads, hashing as it goes, the verdict when the last byte is read.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::claim::Claim;
use super::handle::Blob;
use super::inflated::{Inflated, Lease};
use super::label::Label;
use super::storage::Data;
use crate::digest::Hasher;
use crate::error::Error;

impl Blob {
    /// A cursor at the blob's start, hashing unless the blob is verified.
    pub(super) fn stream(&self) -> Stream {
        Stream {
            claim: None,
            data: self.data.clone(),
            pos: 0,
            size: self.size(),
            hasher: Hasher::default(),
            // A blob already verified (or trusted, in memory) is not hashed
            // again: later consumers only pay for the copy.
            hash: !self.is_verified(),
            done: false,
            verified: Arc::clone(&self.verified),
            label: Arc::clone(&self.label),
            lease: None,
        }
    }
}

/// The verifying cursor shared by [`BlobReader`](super::BlobReader), `read_all`
/// and `copy_to_file`.
pub(super) struct Stream {
    /// Held while this pass verifies the blob for every consumer.
    pub(super) claim: Option<Claim>,
    pub(super) data: Data,
    pub(super) pos: u64,
    pub(super) size: u64,
    pub(super) hasher: Hasher,
    /// Whether this pass hashes the bytes (false once the blob is verified).
    pub(super) hash: bool,
    pub(super) done: bool,
    pub(super) verified: Arc<AtomicBool>,
    pub(super) label: Arc<Label>,
    /// A view's decoder, once a read needed bytes it does not record.
    pub(super) lease: Option<Lease>,
}

impl Stream {
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.size
    }

    /// Reads up to `buf.len()` bytes; verifies when the last byte is read.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.at_end() {
            if !buf.is_empty() {
                self.finish_if_empty()?;
            }
            return Ok(0);
        }
        let n = self.read_raw(buf)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        if self.at_end() {
            self.finish()?;
        }
        Ok(n)
    }

    /// Reads up to `buf.len()` bytes without hashing them; an error if the
    /// storage ends before the blob does.
    pub(super) fn read_raw(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let want = usize::try_from(self.size - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        if let Data::Deferred(deferred) = &self.data {
            let region = deferred
                .region(&self.verified)
                .map_err(|source| self.label.fetch_error(source))?;
            self.data = Data::File(region);
        }
        let n = match &self.data {
            Data::Memory(bytes) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
                let src = bytes.get(start..).unwrap_or_default();
                let n = want.min(src.len());
                buf[..n].copy_from_slice(&src[..n]);
                n
            }
            Data::File(region) => {
                let avail = region.len.saturating_sub(self.pos);
                let want = want.min(usize::try_from(avail).unwrap_or(usize::MAX));
                if want == 0 {
                    0
                } else {
                    loop {
                        match region
                            .file
                            .read_at(&mut buf[..want], region.offset + self.pos)
                        {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(self.io_error(e)),
                        }
                    }
                }
            }
            Data::Inflated(inflated) => {
                let inflated = Arc::clone(inflated);
                self.read_inflated(&inflated, &mut buf[..want])
                    .map_err(|e| self.io_error(e))?
            }
            Data::Deferred(_) => 0,
        };
        if n == 0 {
            return Err(self.short());
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads bytes of a view at `pos`: from the decoder when it is there
    /// (a sequential read goes on with it), else from the skeleton, else
    /// from a decoder moved on to `pos` (this stream's, or one of the
    /// view's idle ones, or a new one).
    fn read_inflated(&mut self, inflated: &Arc<Inflated>, buf: &mut [u8]) -> io::Result<usize> {
        let pos = self.pos;
        if let Some(lease) = &mut self.lease
            && lease.pos() == pos
        {
            return lease.read(buf);
        }
        let n = inflated.skeleton().read_at(pos, buf)?;
        if n > 0 {
            return Ok(n);
        }
        match &mut self.lease {
            Some(lease) if lease.pos() <= pos => lease.advance_to(pos)?,
            _ => {
                self.lease = None; // back to the pool first
                self.lease = Some(inflated.lease(pos)?);
            }
        }
        match &mut self.lease {
            Some(lease) => lease.read(buf),
            None => Ok(0),
        }
    }

    /// Moves `n` bytes on (fewer at the end); returns how many. A blob
    /// this pass hashes is read over; one that needs no hashing (verified,
    /// a view) is not read at all.
    pub(super) fn skip(&mut self, n: u64) -> Result<u64, Error> {
        let start = self.pos;
        let n = n.min(self.size - self.pos);
        if self.hash {
            // Read over a chunk at a time: the caller asks again.
            let n = n.min(crate::chunk::CHUNK_SIZE as u64);
            let mut buf = crate::chunk::Chunk::take();
            while self.pos < start + n {
                let want = usize::try_from(start + n - self.pos)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.read(&mut buf[..want])?;
            }
        } else {
            self.pos += n;
            if self.at_end() {
                self.finish_if_empty()?;
            }
        }
        Ok(self.pos - start)
    }

    /// Verifies a blob of size 0 (no read ever reaches its last byte).
    pub(super) fn finish_if_empty(&mut self) -> Result<(), Error> {
        if !self.done && self.at_end() {
            self.finish()?;
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<(), Error> {
        self.done = true;
        // Whatever the outcome, waiting consumers may go on once this
        // returns (release happens when the claim is dropped).
        let _claim = self.claim.take();
        if !self.hash {
            return Ok(()); // verified before this pass, or trusted as given
        }
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.label.digest {
            return Err(Error::DigestMismatch {
                input: self.label.input.clone(),
                digest: self.label.digest.clone(),
                context: self.label.context.clone(),
                actual,
            });
        }
        self.verified.store(true, Ordering::Release);
        Ok(())
    }

    pub(super) fn short(&self) -> Error {
        Error::ShortBlob {
            input: self.label.input.clone(),
            digest: self.label.digest.clone(),
            context: self.label.context.clone(),
            read: self.pos,
            expected: self.size,
        }
    }

    fn io_error(&self, source: io::Error) -> Error {
        self.label.io_error(source)
    }
}
