//! A decoder over a compressed layer at some position of its tar: it reads
//! the compressed bytes from their start, hashes them as it goes and, at
//! their end, compares them with the layer's digest, so a source that
//! changed since the view was made fails the read that meets it.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use super::Source;
use crate::blob::region::FileRegion;
use crate::digest::Hasher;

/// Largest zstd window (as a power of two) a decoder accepts, here and in
/// the conversions: the format's default limit, 128 MiB.
pub(crate) const ZSTD_MAX_WINDOW_LOG: u32 = 27;

/// Buffer of the compressed bytes read ahead of the decoder.
const SOURCE_BUFFER: usize = 256 << 10;

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Zstd,
}

/// The compressed bytes, read in order and hashed.
struct Compressed {
    region: FileRegion,
    pos: u64,
    hasher: Hasher,
    digest: Arc<str>,
    /// Whether the end was reached and checked.
    checked: bool,
}

impl Read for Compressed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.region.len - self.pos;
        if left == 0 {
            self.check()?;
            return Ok(0);
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = loop {
            use std::os::unix::fs::FileExt;
            match self
                .region
                .file
                .read_at(&mut buf[..want], self.region.offset + self.pos)
            {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the compressed layer ends after {} of its {} bytes",
                    self.pos, self.region.len
                ),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Compressed {
    /// Compares the bytes read, all of them, with the digest (once).
    fn check(&mut self) -> io::Result<()> {
        if self.checked {
            return Ok(());
        }
        self.checked = true;
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != *self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the compressed layer changed since its view was made: it now hashes to {actual}"
                ),
            ));
        }
        Ok(())
    }

    /// Reads (and hashes) the rest of the compressed bytes and checks them.
    fn finish(&mut self) -> io::Result<()> {
        let mut buf = vec![0; SOURCE_BUFFER];
        while self.read(&mut buf)? > 0 {}
        self.check()
    }
}

/// The decompressor over the compressed bytes.
enum Decoder {
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<Compressed>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Compressed>>>),
}

/// A decoder at position `pos` of the tar.
pub(crate) struct Cursor {
    decoder: Decoder,
    pos: u64,
}

impl Cursor {
    /// A decoder at the start of the tar of `source`.
    pub(crate) fn new(source: &Source) -> io::Result<Cursor> {
        let compressed = Compressed {
            region: source.region.clone(),
            pos: 0,
            hasher: Hasher::default(),
            digest: Arc::clone(&source.digest),
            checked: false,
        };
        let buffered = BufReader::with_capacity(SOURCE_BUFFER, compressed);
        let decoder = match source.codec {
            Codec::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(buffered))),
            Codec::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
                decoder.window_log_max(ZSTD_MAX_WINDOW_LOG)?;
                Decoder::Zstd(Box::new(decoder))
            }
        };
        Ok(Cursor { decoder, pos: 0 })
    }

    /// Where in the tar the next byte read is.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next bytes of the tar; an error if it ends (an
    /// `UnexpectedEof`) or the compressed bytes fail.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.decoder {
            Decoder::Gzip(d) => d.read(buf)?,
            Decoder::Zstd(d) => d.read(buf)?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the decompressed layer ends at byte {}", self.pos),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads the rest of the compressed bytes, hashing them, and checks
    /// them against the layer's digest.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        let buffered = match &mut self.decoder {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
        };
        buffered.get_mut().finish()
    }
}
