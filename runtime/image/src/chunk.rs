//! Copy buffers, reused across copies.
//!
//! A fresh 1 MiB buffer costs 256 page faults and a memset before the first
//! byte is read into it; copying many small blobs paid that for every blob
//! (most of the system time of an export of 200 layers of 1.3 MiB went to
//! faulting in new buffers). A [`Chunk`] goes back to a small process-wide
//! pool when dropped, and the next copy takes it from there; the runtime
//! hands chunks to HTTP bodies as `Bytes::from_owner(chunk)`, so they come
//! back once sent.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

/// Size of a chunk: what one read or write of a copy moves.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Most chunks kept for reuse (each [`CHUNK_SIZE`] bytes): enough for a
/// few copies running at once, each with its pipeline of chunks in flight.
const KEPT: usize = 8;

/// Chunks waiting to be reused.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of up to [`CHUNK_SIZE`] bytes that returns to the pool when
/// dropped. Its length is what the last fill left (see [`Chunk::truncate`]).
#[derive(Debug)]
pub struct Chunk {
    /// Always [`CHUNK_SIZE`] bytes: reuse never zeroes or grows it.
    buf: Vec<u8>,
    len: usize,
}

impl Chunk {
    /// A chunk from the pool, or a new one; its length is [`CHUNK_SIZE`].
    pub fn take() -> Chunk {
        let spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        Chunk {
            buf: spare.unwrap_or_else(|| vec![0; CHUNK_SIZE]),
            len: CHUNK_SIZE,
        }
    }

    /// Makes the whole chunk writable again after a short fill.
    pub fn reset(&mut self) {
        self.len = self.buf.len();
    }

    /// Keeps only the first `len` bytes (what a fill wrote).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < KEPT {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_whole_when_taken_again() {
        let mut chunk = Chunk::take();
        assert_eq!(chunk.len(), CHUNK_SIZE);
        chunk.truncate(10);
        assert_eq!(chunk.len(), 10);
        chunk.reset();
        assert_eq!(chunk.len(), CHUNK_SIZE);
        chunk.truncate(10);
        drop(chunk);
        let taken: Vec<Chunk> = (0..=KEPT).map(|_| Chunk::take()).collect();
        assert!(taken.iter().all(|c| c.len() == CHUNK_SIZE));
    }
}
