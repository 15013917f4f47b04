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
//! One conversion runs on two threads (`pipeline`): decompressing and
//! hashing the tar on one, compressing, hashing and writing on the other.
//! The caller bounds how many conversions run at once (by the cores); the
//! second thread is for the largest layer's conversion, which ends last,
//! alone, and is the export's critical path.
//!
//! Each conversion runs within its caller's [`Budget`]: it stops at the
//! caller's deadline and when the uncompressed tar, or the file written,
//! passes the caller's scratch limit; a PAX header over [`MAX_PAX_HEADER`]
//! fails it. Results are shared: every caller asking the same conversion of
//! the same layer (other instances of the run included) gets the one result,
//! computed once; a caller arriving while it is computed waits for it. A
//! conversion stopped by its caller's limits is not shared: the next caller
//! converts with its own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oci_spec::image::Descriptor;

use crate::blob::{Blob, BlobReader, FileRegion, ZSTD_MAX_WINDOW_LOG};
use crate::error::Error;

mod budget;
mod compression;
mod encode;
mod pipeline;
mod tar_times;
mod view;

pub use budget::Budget;
use budget::{Metered, Spent};
pub use compression::{Compression, LevelError};
pub use tar_times::MAX_PAX_HEADER;
use tar_times::rewrite_timestamps;

/// Buffer size of the conversion pipeline.
const CHUNK: usize = 1 << 20;

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

impl ConvertOptions {
    /// Host memory one conversion with these options may hold: the
    /// pipeline's buffers plus, when it may compress with zstd (asked for,
    /// or kept by a zstd layer at the default level), zstd's own estimate
    /// of its streaming compressor at that level (about 700 MB at 22).
    pub fn host_memory(&self) -> u64 {
        let zstd_level = match self.compression {
            Compression::Zstd => self.level.unwrap_or(ZSTD_DEFAULT_LEVEL),
            _ => ZSTD_DEFAULT_LEVEL,
        };
        PIPELINE_MEMORY + zstd_cstream_size(zstd_level)
    }
}

/// zstd's default compression level.
const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// Buffers of one conversion besides a zstd compressor: the chunks between
/// its two stages, its read and write buffers and a gzip state (under a
/// chunk). (A zstd decoder's window is bounded apart, by
/// [`ZSTD_MAX_WINDOW_LOG`].)
const PIPELINE_MEMORY: u64 = (pipeline::CHUNKS_HELD as u64 + 3) * CHUNK as u64;

/// zstd's estimate of the memory a streaming compressor at `level` holds.
fn zstd_cstream_size(level: i32) -> u64 {
    // SAFETY: a pure function of an integer (libzstd's
    // ZSTD_estimateCStreamSize); it reads and writes no memory of ours.
    let size = unsafe { zstd::zstd_safe::zstd_sys::ZSTD_estimateCStreamSize(level) };
    size as u64
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

/// Why a conversion failed: a limit of the caller's (not kept: the next
/// caller tries with its own), the temporary storage (full or unwritable;
/// not kept either: space may come back) or anything else (kept and
/// shared).
#[derive(Debug, Clone)]
enum Failure {
    Limit(Spent),
    Storage(String),
    Failed(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Failed(message)
    }
}

impl From<LevelError> for Failure {
    fn from(e: LevelError) -> Failure {
        Failure::Failed(e.to_string())
    }
}

/// The outcome of one conversion: none when the layer is already as asked.
type Outcome = Result<Option<Arc<Converted>>, Failure>;

/// Each conversion asked so far (by layer digest and options): filled in by
/// the first caller whose conversion ends other than on its own limits;
/// callers arriving meanwhile wait on the lock. Views kept lazily
/// ([`Converter::view`]) are apart from the conversions (`true`).
type Conversions = HashMap<(String, ConvertOptions, bool), Arc<Mutex<Option<Outcome>>>>;

/// Converts layers for one run, each conversion once (see the module doc).
///
/// Each converted layer is an unnamed file (`O_TMPFILE`) of the temporary
/// directory: nothing of it has a name on disk, so the kernel frees it when
/// the last handle on it goes, with the converter or, however the process
/// ends (a failure, Ctrl-C, a kill), with the process.
#[derive(Debug, Default)]
pub struct Converter {
    /// Where the unnamed files go: the temporary directory when `None`.
    dir: Option<PathBuf>,
    done: Mutex<Conversions>,
    /// Decoders the lazily kept views made here hold idle (bounded across
    /// them all).
    idle_decoders: Arc<std::sync::atomic::AtomicUsize>,
}

impl Converter {
    /// A converter writing into the temporary directory (`$TMPDIR`).
    pub fn new() -> Converter {
        Converter::default()
    }

    /// A converter writing its unnamed files into `dir`.
    pub fn in_dir(dir: PathBuf) -> Converter {
        Converter {
            dir: Some(dir),
            ..Converter::default()
        }
    }

    /// The directory the files go in.
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// A new unnamed file in [`Converter::dir`].
    fn temporary_file(&self) -> Result<File, Failure> {
        let dir = self.dir();
        tempfile::tempfile_in(&dir).map_err(|e| {
            Failure::Storage(format!(
                "creating a temporary file in {}: {e}",
                dir.display()
            ))
        })
    }

    /// Converts `blob` as `options` ask, within `budget`; `None` when it is
    /// already as asked (same compression, no timestamp rewriting). Blocks
    /// while converting or while another caller converts the same: call it
    /// off the async executor.
    pub fn convert(
        &self,
        blob: &Blob,
        options: &ConvertOptions,
        budget: &Budget,
    ) -> Result<Option<Arc<Converted>>, Error> {
        self.shared(blob, (*options, false), || {
            self.compute(blob, options, budget)
        })
    }

    /// The outcome of the conversion `key` of `blob`: the one computed (by
    /// `compute`, now or by an earlier caller) and kept, unless it ended on
    /// the caller's limits or the storage.
    fn shared(
        &self,
        blob: &Blob,
        (options, lazy): (ConvertOptions, bool),
        compute: impl FnOnce() -> Outcome,
    ) -> Result<Option<Arc<Converted>>, Error> {
        let key = (blob.descriptor().digest().to_string(), options, lazy);
        let cell = {
            let mut done = self
                .done
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(done.entry(key).or_default())
        };
        let mut slot = cell.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = match slot.as_ref() {
            Some(outcome) => outcome.clone(),
            None => {
                let outcome = compute();
                if !matches!(outcome, Err(Failure::Limit(_) | Failure::Storage(_))) {
                    *slot = Some(outcome.clone());
                }
                outcome
            }
        };
        let input = blob.input_name().to_owned();
        let digest = blob.descriptor().digest().to_string();
        outcome.map_err(|failure| match failure {
            Failure::Limit(spent) => Error::ConvertLimit {
                input,
                digest,
                limit: spent.limit,
                value: spent.value,
                message: spent.message,
            },
            Failure::Failed(message) => Error::Convert {
                input,
                digest,
                message,
            },
            Failure::Storage(message) => Error::ConvertStorage {
                input,
                digest,
                message,
            },
        })
    }

    fn compute(&self, blob: &Blob, options: &ConvertOptions, budget: &Budget) -> Outcome {
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
        let file = self.temporary_file()?;
        let writer = file
            .try_clone()
            .map_err(|e| format!("opening the converted file: {e}"))?;
        let out = transcode(
            blob.open_shared(),
            (source, target, level),
            options.rewrite_timestamp,
            writer,
            budget,
        )
        .map_err(|e| match Spent::of(&e) {
            Some(limit) => Failure::Limit(limit),
            None if is_storage_full(&e) => Failure::Storage(format!(
                "{} to {}: the temporary directory {} is full: {e}",
                source.name(),
                target.name(),
                self.dir().display()
            )),
            None => Failure::Failed(format!("{} to {}: {e}", source.name(), target.name())),
        })?;
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

/// Whether `e` says the disk (or the user's quota) is full.
fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
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
/// `epoch` is given, compresses it as `target` into `out`, within `budget`
/// (the uncompressed tar and what is written are each metered): the
/// decompressing and the compressing halves each on a thread of their own
/// (see [`pipeline`]).
fn transcode(
    reader: BlobReader,
    (source, target, level): (Compression, Compression, Option<i32>),
    epoch: Option<u64>,
    out: File,
    budget: &Budget,
) -> io::Result<Output> {
    let decoded = decoding(reader, source)?;
    let mut decoded = Metered::new(decoded, budget, "the uncompressed tar");
    let (diff_id, (digest, size)) = pipeline::run(
        target == Compression::Gzip,
        |feed| match epoch {
            Some(epoch) => rewrite_timestamps(&mut decoded, feed, epoch),
            None => feed.fill_from(&mut decoded),
        },
        |drain| encode::encode(drain, (target, level), out, budget),
    )?;
    Ok(Output {
        digest: digest.unwrap_or_else(|| diff_id.clone()),
        size,
        diff_id,
    })
}

/// The uncompressed tar of `reader`, a layer compressed as `source`.
fn decoding(reader: BlobReader, source: Compression) -> io::Result<Box<dyn Read>> {
    Ok(match source {
        Compression::Uncompressed => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            CHUNK, reader,
        ))),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(reader)?;
            decoder.window_log_max(ZSTD_MAX_WINDOW_LOG)?;
            Box::new(decoder)
        }
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod two_stage_tests;
