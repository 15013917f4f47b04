//! Blob bytes as `wasi:io` streams: a blob copied into a guest's
//! output-stream by the host (`copy-to-stream`), and a blob read by the
//! guest as an input-stream (`read`, the slow path).

use std::io::Read;

use bytes::Bytes;
use outport_image::{BlobReader, Chunk};
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError};

use super::damaged::DamagedInput;
use crate::host::bindings::types::Error;

/// Streams a blob into a WASI output-stream: the next chunk is read and
/// hashed while the stream writes the previous one.
pub(super) async fn copy_to_stream(
    mut reader: BlobReader,
    stream: &mut dyn wasmtime_wasi::p2::OutputStream,
    damaged: &DamagedInput,
) -> Result<u64, Error> {
    let mut written = 0u64;
    loop {
        // A pooled buffer, back in the pool once the stream has sent it: a
        // fresh megabyte per chunk cost a page fault per 4 KiB.
        let mut chunk = Chunk::take();
        let n = read_full(&mut reader, &mut chunk)
            .map_err(|e| Error::InvalidImage(damaged.reader_failed(&e)))?;
        if n == 0 {
            break;
        }
        chunk.truncate(n);
        let mut bytes = Bytes::from_owner(chunk);
        while !bytes.is_empty() {
            let permit = stream.write_ready().await.map_err(stream_error)?;
            let piece = bytes.split_to(permit.min(bytes.len()));
            stream.write(piece).map_err(stream_error)?;
        }
        written += n as u64;
    }
    // Every byte was accepted. A consumer that closes the stream once it has
    // them all (an HTTP request body with a `Content-Length`: hyper drops
    // it at the last byte) has not failed the copy.
    let flushed = match stream.flush() {
        Ok(()) => stream.write_ready().await.map(drop),
        Err(e) => Err(e),
    };
    match flushed {
        Ok(()) | Err(StreamError::Closed) => Ok(written),
        Err(e) => Err(stream_error(e)),
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(reader: &mut BlobReader, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn stream_error(e: StreamError) -> Error {
    match e {
        StreamError::Closed => Error::Io("copy-to-stream: the output stream is closed".into()),
        StreamError::LastOperationFailed(e) | StreamError::Trap(e) => {
            Error::Io(format!("copy-to-stream: {e:#}"))
        }
    }
}

/// The slow path: a blob as a `wasi:io` input-stream.
pub(super) struct BlobInputStream {
    pub(super) reader: BlobReader,
    pub(super) done: bool,
    pub(super) damaged: DamagedInput,
    /// The instance's count of open streams of lazily kept views, for
    /// such a view (see `LAZY_STREAMS`).
    pub(super) _slot: Option<std::sync::Arc<()>>,
}

#[async_trait::async_trait]
impl Pollable for BlobInputStream {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl InputStream for BlobInputStream {
    fn read(&mut self, size: usize) -> Result<Bytes, StreamError> {
        if self.done {
            return Err(StreamError::Closed);
        }
        let mut buf = Chunk::take();
        buf.truncate(size);
        match self.reader.read(&mut buf) {
            Ok(0) if !buf.is_empty() => {
                self.done = true;
                Err(StreamError::Closed)
            }
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from_owner(buf))
            }
            Err(e) => {
                self.done = true;
                Err(StreamError::LastOperationFailed(wasmtime::Error::msg(
                    self.damaged.reader_failed(&e),
                )))
            }
        }
    }

    /// Moves on without reading what a verified blob (or a view) holds:
    /// a header-only reader of a layer passes over its files for free.
    fn skip(&mut self, nelem: usize) -> Result<usize, StreamError> {
        if self.done {
            return Err(StreamError::Closed);
        }
        match self.reader.skip(nelem as u64) {
            Ok(0) if nelem > 0 => {
                self.done = true;
                Err(StreamError::Closed)
            }
            Ok(n) => Ok(usize::try_from(n).unwrap_or(nelem)),
            Err(e) => {
                self.done = true;
                Err(StreamError::LastOperationFailed(wasmtime::Error::msg(
                    self.damaged.reader_failed(&e),
                )))
            }
        }
    }

    async fn blocking_skip(&mut self, nelem: usize) -> Result<usize, StreamError> {
        self.skip(nelem)
    }
}
