//! Reading a layer: the blob's bytes through the slow path (`blob.read()`,
//! in large chunks), decompressed (gzip, zstd or none, told by the first
//! bytes), as a tar archive.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

use crate::bindings::outport::exporter::image;
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::io::streams::{InputStream, StreamError};

/// How many bytes one `blocking-read` of a layer asks for.
const CHUNK: u64 = 1 << 20;

/// A blob's input-stream as [`Read`].
pub struct BlobReader {
    stream: InputStream,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
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
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
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
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
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

/// The decompressed bytes of layer `digest`: gzip and zstd are told by
/// their magic numbers, anything else is read as a plain tar.
pub fn layer(digest: &str) -> Result<Box<dyn Read>, Error> {
    let mut source = BufReader::with_capacity(CHUNK as usize, BlobReader::open(digest)?);
    let head = source
        .fill_buf()
        .map_err(|e| Error::Io(format!("reading layer {digest}: {e}")))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(MultiGzDecoder::new(source))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = StreamingDecoder::new(source)
            .map_err(|e| Error::InvalidImage(format!("layer {digest} is not valid zstd: {e}")))?;
        Box::new(Zstd {
            decoder: Some(decoder),
        })
    } else {
        Box::new(source)
    })
}
