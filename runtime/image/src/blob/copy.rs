//! Copying a blob, or a range of it, into a file: positioned writes with the
//! hashing on a second thread, or `copy_file_range` once the blob is
//! verified.

use std::fs::File;
use std::io;
use std::sync::{Arc, mpsc};

use super::handle::Blob;
use super::storage::{Data, FileRegion};
use super::stream::Stream;
use crate::chunk::{CHUNK_SIZE, Chunk};
use crate::digest::Hasher;
use crate::error::Error;
use crate::pieces::write_all_at;

impl Blob {
    /// Writes the blob at `offset` of `dest` with positioned writes, in 1 MiB
    /// chunks, verifying the digest as it goes (on a second thread, so
    /// hashing overlaps the copy); returns the number of bytes written. A
    /// verified blob stored in a file is copied with `copy_file_range` where
    /// the kernel supports it, and so is one another consumer is verifying
    /// at the time (the copy then waits for the verdict, and copies again,
    /// hashing, if that consumer failed).
    pub fn copy_to_file(&self, dest: &File, offset: u64) -> Result<u64, Error> {
        self.copy(dest, offset).map_err(|e| self.copy_error(e))
    }

    fn copy_error(&self, e: CopyError) -> Error {
        match e {
            CopyError::Blob(e) => e,
            CopyError::Io(e) => self.io_error(e),
        }
    }

    /// Writes the `len` bytes of the blob that start at byte `start` at
    /// `offset` of `dest` (with `copy_file_range` where the kernel can);
    /// returns `len`. The whole blob is verified first, reading it all once
    /// unless a consumer already has (or is: then this waits for it), so no
    /// byte of a blob that does not match its digest is ever written. An
    /// error if the range runs past the blob's end.
    pub fn copy_range_to_file(
        &self,
        start: u64,
        len: u64,
        dest: &File,
        offset: u64,
    ) -> Result<u64, Error> {
        let end = self.check_range(start, len)?;
        let data = self.present_data()?;
        self.verify()?;
        let copied = match &data {
            Data::File(region) if start <= region.len => {
                let rest = FileRegion {
                    file: Arc::clone(&region.file),
                    offset: region.offset + start,
                    len: region.len - start,
                };
                copy_range(&rest, len, dest, offset)
            }
            _ => Ok(false),
        };
        let copied = match copied {
            Ok(true) => Ok(len),
            // Verified bytes, read again without hashing.
            Ok(false) => {
                let mut stream = Stream {
                    pos: start,
                    size: end,
                    hash: false,
                    ..self.stream()
                };
                copy_chunks(&mut stream, dest, offset, Chunk::take(), Ok)
            }
            Err(e) => Err(e),
        };
        copied.map_err(|e| self.copy_error(e))
    }

    /// The end of the `len` bytes from byte `start`; an error if they run
    /// past the blob's end.
    pub fn check_range(&self, start: u64, len: u64) -> Result<u64, Error> {
        let size = self.size();
        start
            .checked_add(len)
            .filter(|&end| end <= size)
            .ok_or_else(|| Error::RangeOutside {
                input: self.label.input.clone(),
                digest: self.label.digest.clone(),
                context: self.label.context.clone(),
                start,
                len,
                size,
            })
    }

    fn copy(&self, dest: &File, offset: u64) -> Result<u64, CopyError> {
        let size = self.size();
        match &self.present_data()? {
            Data::Memory(bytes) => {
                let bytes = usize::try_from(size)
                    .ok()
                    .and_then(|len| bytes.get(..len))
                    .ok_or_else(|| self.stream().short())?;
                write_all_at(dest, bytes, offset).map_err(CopyError::Io)?;
                Ok(size)
            }
            Data::File(region) => {
                // One consumer at a time hashes an unverified blob. A
                // concurrent copy does not hash it again: it copies the
                // bytes in the kernel meanwhile, then waits for the verdict,
                // and succeeds only if the blob was verified.
                if !self.is_verified()
                    && self.verifying.is_busy()
                    && copy_range(region, size, dest, offset)?
                {
                    self.verifying.wait();
                    if self.is_verified() {
                        return Ok(size);
                    }
                }
                let _claim = self.claim_or_wait();
                if self.is_verified() && copy_range(region, size, dest, offset)? {
                    return Ok(size);
                }
                self.copy_slow(dest, offset)
            }
            Data::Deferred(_) | Data::Inflated(_) => self.copy_slow(dest, offset),
        }
    }

    fn copy_slow(&self, dest: &File, offset: u64) -> Result<u64, CopyError> {
        let mut stream = self.stream();
        let written = if stream.hash && self.size() > CHUNK_SIZE as u64 {
            let (written, hasher) = copy_hashing_aside(&mut stream, dest, offset)?;
            stream.hasher = hasher;
            written
        } else {
            // Nothing to hash, or one chunk: hash inline (if at all).
            let hash = stream.hash;
            let mut hasher = Hasher::default();
            let written = copy_chunks(&mut stream, dest, offset, Chunk::take(), |chunk| {
                if hash {
                    hasher.update(&chunk);
                }
                Ok(chunk)
            })?;
            stream.hasher = hasher;
            written
        };
        stream.finish()?;
        Ok(written)
    }
}

/// Buffers in flight between the copying thread and the hashing thread.
const PIPELINE: usize = 2;

/// Copies the rest of `stream` to `dest` at `offset` while a second thread
/// hashes each chunk once it is written: reading, writing and hashing
/// overlap, and the bytes hashed are exactly the bytes written. Returns the
/// bytes written and the hash of them.
fn copy_hashing_aside(
    stream: &mut Stream,
    dest: &File,
    offset: u64,
) -> Result<(u64, Hasher), CopyError> {
    let (to_hash, hash_queue) = mpsc::sync_channel::<Chunk>(PIPELINE);
    let (recycle, free) = mpsc::channel::<Chunk>();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(move || {
            let mut hasher = Hasher::default();
            for chunk in hash_queue {
                hasher.update(&chunk);
                // The copying side may have stopped; the buffer is then dropped.
                let _ = recycle.send(chunk);
            }
            hasher
        });
        let written = copy_chunks(stream, dest, offset, Chunk::take(), |chunk| {
            to_hash
                .send(chunk)
                .map_err(|_| CopyError::Io(io::Error::other("the hashing thread stopped")))?;
            // Reuse a buffer the hasher is done with, or take one (at most
            // PIPELINE + 2 are in use at once).
            Ok(free.try_recv().unwrap_or_else(|_| Chunk::take()))
        });
        drop(to_hash);
        let hasher = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written.map(|w| (w, hasher))
    })
}

/// Copies the rest of `stream` (without hashing) to `dest` at `offset`, a
/// chunk at a time; `next` gets each written chunk and returns the buffer
/// for the next one.
fn copy_chunks(
    stream: &mut Stream,
    dest: &File,
    offset: u64,
    mut buf: Chunk,
    mut next: impl FnMut(Chunk) -> Result<Chunk, CopyError>,
) -> Result<u64, CopyError> {
    let mut written = 0u64;
    while !stream.at_end() {
        buf.reset();
        let mut filled = 0;
        while filled < buf.len() && !stream.at_end() {
            filled += stream.read_raw(&mut buf[filled..])?;
        }
        buf.truncate(filled);
        write_all_at(dest, &buf, offset + written).map_err(CopyError::Io)?;
        written += filled as u64;
        buf = next(buf)?;
    }
    Ok(written)
}

/// Internal error of the copy paths: a blob error, or a bare I/O error to be labelled.
enum CopyError {
    Blob(Error),
    Io(io::Error),
}

impl From<Error> for CopyError {
    fn from(e: Error) -> Self {
        CopyError::Blob(e)
    }
}

/// Copies a verified file region with `copy_file_range`; `Ok(false)` if the
/// kernel or file systems cannot, so the caller falls back to read/write.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn copy_range(region: &FileRegion, size: u64, dest: &File, offset: u64) -> Result<bool, CopyError> {
    use rustix::io::Errno;
    if size > region.len {
        return Ok(false); // let the slow path report the short file
    }
    let mut off_in = region.offset;
    let mut off_out = offset;
    let mut remaining = size;
    while remaining > 0 {
        let chunk = usize::try_from(remaining.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(
            &*region.file,
            Some(&mut off_in),
            dest,
            Some(&mut off_out),
            chunk,
        ) {
            Ok(0) => return Ok(false),
            Ok(n) => remaining -= n as u64,
            Err(Errno::INTR) => {}
            Err(Errno::NOSYS | Errno::XDEV | Errno::INVAL | Errno::OPNOTSUPP | Errno::PERM) => {
                return Ok(false);
            }
            Err(e) => return Err(CopyError::Io(e.into())),
        }
    }
    Ok(true)
}

/// Without `copy_file_range`, always fall back to read/write.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn copy_range(_: &FileRegion, _: u64, _: &File, _: u64) -> Result<bool, CopyError> {
    Ok(false)
}
