//! Reading a layer: the blob's bytes through the slow path (`blob.read()`,
//! in large chunks), decompressed (gzip, zstd or none, told by the first
//! bytes), as a tar archive. An uncompressed layer can also skip forward
//! (the host reads and hashes the skipped bytes, which never enter guest
//! memory), so its files' bytes need not be read to list its entries.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

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
    /// Opens blob `digest` for reading.
    pub fn open(digest: &str) -> Result<Self, Error> {
        let stream = image::get_blob(digest)?.read()?;
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

/// A zstd stream of one or more frames.
struct Zstd<R: BufRead> {
    decoder: Option<StreamingDecoder<R, FrameDecoder>>,
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            // This frame is done: another may follow.
            let (mut source, frame) = self.decoder.take().expect("a decoder").into_parts();
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.decoder =
                Some(StreamingDecoder::new_with_decoder(source, frame).map_err(io::Error::other)?);
        }
    }
}

/// A layer, ready to be read as a tar.
pub enum Layer {
    /// An uncompressed tar: it can skip forward, and an entry's bytes lie in
    /// the blob at the entry's position in the tar.
    Plain(BlobReader),
    /// A compressed tar, decompressed as it is read.
    Packed(Box<dyn Read>),
}

impl Layer {
    /// The tar's bytes as a plain reader.
    pub fn into_read(self) -> Box<dyn Read> {
        match self {
            Layer::Plain(reader) => Box::new(reader),
            Layer::Packed(reader) => reader,
        }
    }
}

/// Layer `digest`: gzip and zstd are told by their magic numbers, anything
/// else is read as a plain tar.
pub fn layer(digest: &str) -> Result<Layer, Error> {
    let mut source = BlobReader::open(digest)?;
    let head = source
        .fill_buf()
        .map_err(|e| Error::Io(format!("reading layer {digest}: {e}")))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Layer::Packed(Box::new(MultiGzDecoder::new(source)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = StreamingDecoder::new(source)
            .map_err(|e| Error::InvalidImage(format!("layer {digest} is not valid zstd: {e}")))?;
        Layer::Packed(Box::new(Zstd {
            decoder: Some(decoder),
        }))
    } else {
        Layer::Plain(source)
    })
}
