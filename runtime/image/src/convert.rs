//! Layer conversion on the host: recompressing a layer (uncompressed, gzip,
//! zstd) and clamping the file times in its tar to a source date epoch.
//!
//! A [`Converter`] lives for one run. Each conversion streams: the blob is
//! read (and verified) in chunks, decompressed, its tar headers optionally
//! rewritten, compressed again and written to an anonymous file in the
//! run's temporary directory, hashed on the way both before compression
//! (the new diff ID) and after (the new digest). Memory use does not depend
//! on the layer's size, and a failed conversion leaves no file behind.
//!
//! Results are shared: every caller asking the same conversion of the same
//! layer (other instances of the run included) gets the one result, computed
//! once; a caller arriving while it is computed waits for it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use oci_spec::image::{Descriptor, MediaType};

use crate::blob::{Blob, BlobReader, FileRegion};
use crate::digest::Hasher;
use crate::error::Error;

/// Buffer size of the conversion pipeline.
const CHUNK: usize = 1 << 20;

/// How a layer's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    Uncompressed,
    /// gzip (deflate).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The compression of a blob starting with `head` (its first bytes).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }

    /// `uncompressed`, `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// The OCI layer media type of a tar compressed this way.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::Uncompressed => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// Checks a compression level: 0–9 for gzip, 1–22 for zstd, none for
    /// uncompressed layers.
    pub fn check_level(self, level: i32) -> Result<(), String> {
        let range = match self {
            Compression::Uncompressed => {
                return Err("uncompressed layers take no compression level".to_owned());
            }
            Compression::Gzip => 0..=9,
            Compression::Zstd => 1..=22,
        };
        if range.contains(&level) {
            Ok(())
        } else {
            Err(format!(
                "compression level {level} is out of range for {} ({}-{})",
                self.name(),
                range.start(),
                range.end()
            ))
        }
    }
}

/// What a conversion asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvertOptions {
    /// The compression asked for.
    pub compression: Compression,
    /// The level of `compression`; none: the algorithm's default.
    pub level: Option<i32>,
    /// Recompress compressed layers too; otherwise only uncompressed layers
    /// get `compression` and compressed ones keep theirs.
    pub force: bool,
    /// Clamp every file time in the tar later than this (seconds since 1970).
    pub rewrite_timestamp: Option<u64>,
}

/// A converted layer: its new blob and the digest of its uncompressed tar.
#[derive(Debug)]
pub struct Converted {
    /// The new blob (a verified file of the run's temporary directory),
    /// with its OCI layer media type.
    pub blob: Arc<Blob>,
    /// `sha256:` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
}

/// The outcome of one conversion, shared by everyone who asked it: none when
/// the layer is already as asked.
type Outcome = Result<Option<Arc<Converted>>, String>;

/// Each conversion asked so far (by layer digest and options), filled in
/// once by whoever asked first.
type Conversions = HashMap<(String, ConvertOptions), Arc<OnceLock<Outcome>>>;

/// Converts layers for one run, each conversion once (see the module doc).
#[derive(Debug, Default)]
pub struct Converter {
    /// The run's temporary directory, created by the first conversion and
    /// removed with the converter.
    dir: Mutex<Option<tempfile::TempDir>>,
    done: Mutex<Conversions>,
}

impl Converter {
    /// A converter; its temporary directory is made when first needed.
    pub fn new() -> Converter {
        Converter::default()
    }

    /// The temporary directory, made on first use.
    fn dir(&self) -> Result<PathBuf, String> {
        let mut dir = self
            .dir
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if dir.is_none() {
            let made = tempfile::Builder::new()
                .prefix("outport-convert-")
                .tempdir()
                .map_err(|e| {
                    let tmp = std::env::temp_dir();
                    format!("creating a temporary directory in {}: {e}", tmp.display())
                })?;
            *dir = Some(made);
        }
        Ok(dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .unwrap_or_default())
    }

    /// Converts `blob` as `options` ask; `None` when it is already as asked
    /// (same compression, no timestamp rewriting). Blocks while converting
    /// or while another caller converts the same: call it off the async
    /// executor.
    pub fn convert(
        &self,
        blob: &Blob,
        options: &ConvertOptions,
    ) -> Result<Option<Arc<Converted>>, Error> {
        let key = (blob.descriptor().digest().to_string(), *options);
        let cell = {
            let mut done = self
                .done
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(done.entry(key).or_default())
        };
        cell.get_or_init(|| self.compute(blob, options))
            .clone()
            .map_err(|message| Error::Convert {
                input: blob.input_name().to_owned(),
                digest: blob.descriptor().digest().to_string(),
                message,
            })
    }

    fn compute(&self, blob: &Blob, options: &ConvertOptions) -> Outcome {
        let source = sniff(blob).map_err(|e| e.to_string())?;
        let target = if options.force || source == Compression::Uncompressed {
            options.compression
        } else {
            source
        };
        if target == source && options.rewrite_timestamp.is_none() {
            return Ok(None);
        }
        if let Some(level) = options.level {
            options.compression.check_level(level)?;
        }
        // The level is for the compression asked; a layer keeping its own
        // gets that algorithm's default.
        let level = options.level.filter(|_| target == options.compression);
        let dir = self.dir()?;
        let file = tempfile::tempfile_in(&dir)
            .map_err(|e| format!("creating a file in {}: {e}", dir.display()))?;
        let writer = file
            .try_clone()
            .map_err(|e| format!("opening the converted file: {e}"))?;
        let out = transcode(
            blob.open_shared(),
            source,
            target,
            level,
            options.rewrite_timestamp,
            writer,
        )
        .map_err(|e| format!("{} to {}: {e}", source.name(), target.name()))?;
        let digest: oci_spec::image::Digest = out.digest.parse().map_err(|e| format!("{e}"))?;
        let descriptor = Descriptor::new(target.media_type(), out.size, digest);
        let region = FileRegion {
            file: Arc::new(file),
            offset: 0,
            len: out.size,
        };
        let context = format!(
            "layer {} converted to {}",
            blob.descriptor().digest(),
            target.name()
        );
        let converted = Blob::from_file(descriptor, region, blob.input_name(), &context, true);
        Ok(Some(Arc::new(Converted {
            blob: Arc::new(converted),
            diff_id: out.diff_id,
        })))
    }
}

/// The compression of `blob`, from its first bytes.
fn sniff(blob: &Blob) -> io::Result<Compression> {
    let mut head = [0u8; 4];
    let mut reader = blob.open();
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(Compression::sniff(&head[..filled]))
}

/// What [`transcode`] wrote.
struct Output {
    digest: String,
    size: u64,
    diff_id: String,
}

/// Decompresses `reader` (`source`), rewrites its tar headers when
/// `epoch` is given, compresses it as `target` into `out`.
fn transcode(
    reader: BlobReader,
    source: Compression,
    target: Compression,
    level: Option<i32>,
    epoch: Option<u64>,
    out: File,
) -> io::Result<Output> {
    let mut decoded: Box<dyn Read> = match source {
        Compression::Uncompressed => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            CHUNK, reader,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    };
    let compressed = Hashing::new(BufWriter::with_capacity(CHUNK, out));
    let mut tar = Hashing::new(Encoder::new(target, level, compressed)?);
    match epoch {
        Some(epoch) => rewrite_timestamps(decoded, &mut tar, epoch)?,
        None => {
            io::copy(&mut decoded, &mut tar)?;
        }
    }
    let (encoder, diff_id, _) = tar.finish();
    let (file, digest, size) = encoder.finish()?.finish();
    file.into_inner().map_err(io::IntoInnerError::into_error)?;
    Ok(Output {
        digest,
        size,
        diff_id,
    })
}

/// A writer that hashes and counts what passes.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Hasher::default(),
            count: 0,
        }
    }

    /// The inner writer, the digest and the count of what passed.
    fn finish(self) -> (W, String, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
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
                level.unwrap_or(3),
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

/// Copies the tar `input` to `out` entry by entry, as raw entries (GNU long
/// names and PAX headers kept as they are), with every time later than
/// `epoch` set to `epoch`: the header's mtime (and a GNU header's atime and
/// ctime), and a PAX header's `mtime`, `atime` and `ctime` records.
fn rewrite_timestamps(input: impl Read, out: impl Write, epoch: u64) -> io::Result<()> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(out);
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        if header.mtime()? > epoch {
            header.set_mtime(epoch);
        }
        if let Some(gnu) = header.as_gnu_mut() {
            if gnu.atime().is_ok_and(|t| t > epoch) {
                gnu.set_atime(epoch);
            }
            if gnu.ctime().is_ok_and(|t| t > epoch) {
                gnu.set_ctime(epoch);
            }
        }
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            let data = clamp_pax(&data, epoch)?;
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data.as_slice())?;
        } else {
            header.set_cksum();
            builder.append(&header, &mut entry)?;
        }
    }
    builder.into_inner()?;
    Ok(())
}

/// PAX records with their time records later than `epoch` set to `epoch`.
fn clamp_pax(data: &[u8], epoch: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    for record in tar::PaxExtensions::new(data) {
        let record = record?;
        let key = record.key_bytes();
        let mut value = record.value_bytes();
        let clamped = epoch.to_string();
        if matches!(key, b"mtime" | b"atime" | b"ctime") && pax_time_after(value, epoch) {
            value = clamped.as_bytes();
        }
        pax_record(&mut out, key, value);
    }
    Ok(out)
}

/// Whether a PAX time (`seconds[.fraction]`) is later than `epoch`.
fn pax_time_after(value: &[u8], epoch: u64) -> bool {
    let text = String::from_utf8_lossy(value);
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    match whole.parse::<i64>() {
        Ok(seconds) => {
            let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
            seconds > epoch || (seconds == epoch && fraction.bytes().any(|b| b != b'0'))
        }
        Err(_) => false,
    }
}

/// Appends one PAX record, `"<length> <key>=<value>\n"`, its length
/// counting its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_digest;

    const EPOCH: u64 = 1_000_000;

    /// A tar with a file newer than `EPOCH`, one older, and a PAX mtime.
    fn sample_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, mtime) in [("new.txt", 2_000_000_000u64), ("old.txt", 100)] {
            let mut header = tar::Header::new_gnu();
            header.set_size(5);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_cksum();
            builder
                .append_data(&mut header, name, &b"hello"[..])
                .unwrap();
        }
        builder
            .append_pax_extensions([("mtime", &b"1999999999.5"[..])])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(0);
        header.set_mtime(1_999_999_999);
        header.set_cksum();
        builder
            .append_data(&mut header, "pax.txt", &[][..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn blob(data: Vec<u8>) -> Blob {
        let digest: oci_spec::image::Digest = sha256_digest(&data).parse().unwrap();
        let descriptor = Descriptor::new(MediaType::ImageLayerGzip, data.len() as u64, digest);
        Blob::new_in_memory(descriptor, data.into())
    }

    fn options(compression: Compression, force: bool) -> ConvertOptions {
        ConvertOptions {
            compression,
            level: None,
            force,
            rewrite_timestamp: None,
        }
    }

    fn bytes(converted: &Converted) -> Vec<u8> {
        converted.blob.read_all(u64::MAX).unwrap()
    }

    #[test]
    fn gzip_to_zstd_and_back() {
        let tar = sample_tar();
        let converter = Converter::new();
        let zstd = converter
            .convert(&blob(gzip(&tar)), &options(Compression::Zstd, true))
            .unwrap()
            .unwrap();
        let data = bytes(&zstd);
        assert_eq!(Compression::sniff(&data), Compression::Zstd);
        assert_eq!(
            zstd.blob.descriptor().digest().to_string(),
            sha256_digest(&data)
        );
        assert_eq!(zstd.blob.size(), data.len() as u64);
        assert_eq!(
            zstd.blob.descriptor().media_type(),
            &MediaType::ImageLayerZstd
        );
        assert_eq!(zstd::decode_all(data.as_slice()).unwrap(), tar);
        assert_eq!(zstd.diff_id, sha256_digest(&tar));

        let plain = converter
            .convert(&zstd.blob, &options(Compression::Uncompressed, true))
            .unwrap()
            .unwrap();
        assert_eq!(bytes(&plain), tar);
    }

    #[test]
    fn compressed_layers_keep_their_compression_unless_forced() {
        let tar = sample_tar();
        let converter = Converter::new();
        let gz = blob(gzip(&tar));
        let unchanged = converter.convert(&gz, &options(Compression::Zstd, false));
        assert!(unchanged.unwrap().is_none());
        let compressed = converter
            .convert(&blob(tar.clone()), &options(Compression::Gzip, false))
            .unwrap()
            .unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(bytes(&compressed).as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, tar);
    }

    #[test]
    fn a_conversion_is_computed_once() {
        let converter = Converter::new();
        let layer = blob(sample_tar());
        let a = converter.convert(&layer, &options(Compression::Gzip, false));
        let b = converter.convert(&layer, &options(Compression::Gzip, false));
        assert!(Arc::ptr_eq(&a.unwrap().unwrap(), &b.unwrap().unwrap()));
    }

    #[test]
    fn timestamps_are_clamped_and_reproducible() {
        let opts = ConvertOptions {
            rewrite_timestamp: Some(EPOCH),
            ..options(Compression::Gzip, false)
        };
        let layer = blob(gzip(&sample_tar()));
        let first = Converter::new().convert(&layer, &opts).unwrap().unwrap();
        let again = Converter::new().convert(&layer, &opts).unwrap().unwrap();
        assert_eq!(
            first.blob.descriptor().digest(),
            again.blob.descriptor().digest()
        );
        let data = bytes(&first);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mtime = entry.header().mtime().unwrap();
            let pax_mtime = entry
                .pax_extensions()
                .unwrap()
                .and_then(|mut p| p.find(|r| r.as_ref().unwrap().key().unwrap() == "mtime"))
                .map(|r| r.unwrap().value().unwrap().to_owned());
            let path = entry.path().unwrap().display().to_string();
            seen.push((path, mtime, pax_mtime));
        }
        let epoch = Some(EPOCH.to_string());
        assert_eq!(
            seen,
            [
                ("new.txt".to_owned(), EPOCH, None),
                ("old.txt".to_owned(), 100, None),
                ("pax.txt".to_owned(), EPOCH, epoch),
            ]
        );
    }

    #[test]
    fn corrupt_input_fails_naming_the_blob_and_leaves_no_file() {
        let converter = Converter::new();
        let mut data = gzip(&sample_tar());
        data.truncate(data.len() / 2);
        let layer = blob(data);
        let err = converter
            .convert(&layer, &options(Compression::Zstd, true))
            .unwrap_err()
            .to_string();
        let digest = layer.descriptor().digest().to_string();
        assert!(
            err.contains(&digest) && err.contains("gzip to zstd"),
            "{err}"
        );
        let mut garbage = vec![0x28, 0xb5, 0x2f, 0xfd];
        garbage.extend_from_slice(b"not a zstd frame at all");
        let err = converter
            .convert(&blob(garbage), &options(Compression::Gzip, true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("converting layer sha256:"), "{err}");
        assert_eq!(
            std::fs::read_dir(converter.dir().unwrap()).unwrap().count(),
            0
        );
    }

    #[test]
    fn levels_are_checked_per_algorithm() {
        assert!(Compression::Gzip.check_level(9).is_ok());
        assert!(Compression::Gzip.check_level(10).is_err());
        assert!(Compression::Zstd.check_level(22).is_ok());
        assert!(Compression::Zstd.check_level(0).is_err());
        assert!(Compression::Uncompressed.check_level(1).is_err());
        let converter = Converter::new();
        let opts = ConvertOptions {
            level: Some(42),
            ..options(Compression::Gzip, true)
        };
        let err = converter.convert(&blob(sample_tar()), &opts).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let mut out = Vec::new();
        pax_record(&mut out, b"mtime", b"1");
        assert_eq!(out, b"11 mtime=1\n");
        let mut out = Vec::new();
        // 98 bytes without the length: 2 digits would make 100, so 3: 101.
        pax_record(&mut out, b"path", &[b'a'; 91]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 path="));
    }
}
