//! Reading a layer's uncompressed tar: the bytes of its uncompressed view
//! (`uncompressed-layers`: the host decompresses gzip and zstd layers)
//! through the slow path (`blob.read()`, in large chunks). The reader can
//! also skip forward (the host passes over the skipped bytes, which never
//! enter guest memory), so a file's bytes need not be read to list the
//! layer's entries.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::bindings::outport::exporter::image;
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::io::streams::{InputStream, StreamError};

/// How many bytes one `blocking-read` of a layer asks for.
const CHUNK: u64 = 1 << 20;

/// A blob's input-stream as [`Read`] and [`BufRead`]; it seeks forward
/// only ([`SeekFrom::Current`] with a count of at least 0).
pub struct BlobReader {
    stream: InputStream,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    /// Bytes of the blob before `buf[pos]`.
    offset: u64,
}

impl BlobReader {
    /// Opens `blob` for reading.
    pub fn open(blob: &image::Blob) -> Result<Self, Error> {
        let stream = blob.read()?;
        Ok(BlobReader {
            stream,
            buf: Vec::new(),
            pos: 0,
            done: false,
            offset: 0,
        })
    }

    /// Skips the rest of the blob (so the host reads it to the end, and
    /// checks its digest).
    pub fn skip_to_end(&mut self) -> io::Result<()> {
        self.skip(u64::MAX).map(drop)
    }

    /// Skips up to `n` bytes; returns how many there were.
    fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let start = self.offset;
        let buffered = n.min((self.buf.len() - self.pos) as u64);
        self.consume(buffered as usize);
        n -= buffered;
        while n > 0 && !self.done {
            match self.stream.blocking_skip(n) {
                Ok(0) => break,
                Ok(k) => {
                    n -= k;
                    self.offset += k;
                }
                Err(StreamError::Closed) => self.done = true,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::other(e.to_debug_string()));
                }
            }
        }
        Ok(self.offset - start)
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let available = self.fill_buf()?;
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for BlobReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.buf.len() && !self.done {
            match self.stream.blocking_read(CHUNK) {
                Ok(bytes) => {
                    self.buf = bytes;
                    self.pos = 0;
                }
                Err(StreamError::Closed) => self.done = true,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::other(e.to_debug_string()));
                }
            }
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.pos);
        self.pos += n;
        self.offset += n as u64;
    }
}

impl Seek for BlobReader {
    /// Forward only: `SeekFrom::Current(n)` with `n >= 0` (how `tar` skips
    /// an entry's bytes). Seeking past the end is an error: the layer ends
    /// inside an entry.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Current(n) => {
                let n = u64::try_from(n).map_err(|_| {
                    io::Error::new(io::ErrorKind::Unsupported, "a layer cannot seek backwards")
                })?;
                let skipped = self.skip(n)?;
                if skipped < n {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the layer ends {} bytes into an entry of {n} bytes",
                            skipped
                        ),
                    ));
                }
                Ok(self.offset)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a layer seeks only forward from where it is",
            )),
        }
    }
}
