//! Stage B of a conversion (see [`super::pipeline`]): the tar compressed
//! again, hashed and written in small pieces, within the caller's budget.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use super::budget::{Budget, Metered};
use super::pipeline::Drain;
use super::{CHUNK, Compression, ZSTD_DEFAULT_LEVEL};
use crate::digest::Hasher;
use crate::pieces::SmallWrites;

/// Stage B of [`super::transcode`]: compresses the tar `drain` gives as `target`
/// into `out`; returns the digest of what it wrote (none when it wrote the
/// tar as it came: its digest is the tar's, stage A's) and its size.
pub(super) fn encode(
    mut drain: Drain,
    (target, level): (Compression, Option<i32>),
    out: File,
    budget: &Budget,
) -> io::Result<(Option<String>, u64)> {
    let written = Metered::new(SmallWrites(out), budget, "the converted file");
    let hash = target != Compression::Uncompressed;
    let compressed = Hashing::new(BufWriter::with_capacity(CHUNK, written), hash);
    let mut encoder = Encoder::new(target, level, compressed)?;
    while let Some(pieces) = drain.next_chunk()? {
        pieces.write_to(&mut encoder)?;
    }
    let (file, digest, size) = encoder.finish()?.finish();
    file.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .into_inner();
    Ok((digest, size))
}

/// A writer that counts what passes, and hashes it when asked.
struct Hashing<W> {
    inner: W,
    hasher: Option<Hasher>,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W, hash: bool) -> Self {
        Hashing {
            inner,
            hasher: hash.then(Hasher::default),
            count: 0,
        }
    }

    /// The inner writer, the digest (when hashed) and the count of what
    /// passed.
    fn finish(self) -> (W, Option<String>, u64) {
        (self.inner, self.hasher.map(Hasher::finish), self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressing end of the pipeline.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(target: Compression, level: Option<i32>, inner: W) -> io::Result<Self> {
        Ok(match target {
            Compression::Uncompressed => Encoder::Plain(inner),
            Compression::Gzip => {
                let level = level.and_then(|l| u32::try_from(l).ok()).unwrap_or(6);
                Encoder::Gzip(flate2::write::GzEncoder::new(
                    inner,
                    flate2::Compression::new(level),
                ))
            }
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(
                inner,
                level.unwrap_or(ZSTD_DEFAULT_LEVEL),
            )?),
        })
    }

    /// Ends the compressed stream; returns the inner writer, flushed.
    fn finish(self) -> io::Result<W> {
        let mut inner = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
        };
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}
