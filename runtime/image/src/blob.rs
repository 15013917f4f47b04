//! Blobs: the content behind a descriptor, either a byte range of a file of
//! the input (a blob file of a layout directory or an entry of a tar archive)
//! or bytes in memory, and the readers that stream and verify them.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};

use oci_spec::image::Descriptor;

use crate::chunk::{CHUNK_SIZE, Chunk};
use crate::digest::Hasher;
use crate::error::Error;

/// A byte range of an open file.
#[derive(Debug, Clone)]
pub(crate) struct FileRegion {
    /// The file (a layout blob file or a tar archive).
    pub(crate) file: Arc<File>,
    /// Where the bytes start.
    pub(crate) offset: u64,
    /// How many bytes the region holds (the file's or the tar entry's size).
    pub(crate) len: u64,
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
enum Data {
    Memory(Arc<[u8]>),
    File(FileRegion),
}

/// What messages about a blob name: the input, the digest and what refers to it.
#[derive(Debug)]
struct Label {
    input: String,
    digest: String,
    context: String,
}

impl Label {
    /// An I/O error while reading this blob.
    fn io_error(&self, source: io::Error) -> Error {
        Error::BlobIo {
            input: self.input.clone(),
            digest: self.digest.clone(),
            context: self.context.clone(),
            source,
        }
    }
}

/// One blob of an image: its descriptor and a handle on its bytes.
///
/// Blobs from files are checked against their descriptor's digest as they are
/// streamed ([`Blob::open`], [`Blob::read_all`], [`Blob::copy_to_file`]); once
/// a full read has matched, [`Blob::is_verified`] is true. In-memory blobs
/// are trusted as given.
#[derive(Debug)]
pub struct Blob {
    descriptor: Descriptor,
    data: Data,
    verified: Arc<AtomicBool>,
    /// Which consumer, if any, is verifying the blob right now.
    verifying: Arc<Verifying>,
    label: Arc<Label>,
}

impl Blob {
    /// A blob whose bytes are `data`; the descriptor's digest and size are
    /// taken as given by the caller, who computed them.
    pub fn new_in_memory(descriptor: Descriptor, data: Arc<[u8]>) -> Blob {
        let label = Label {
            input: "in-memory".to_owned(),
            digest: descriptor.digest().to_string(),
            context: "in-memory blob".to_owned(),
        };
        Blob {
            descriptor,
            data: Data::Memory(data),
            verified: Arc::new(AtomicBool::new(true)),
            verifying: Arc::default(),
            label: Arc::new(label),
        }
    }

    /// An in-memory blob read or synthesised from `input`, named by `context` in messages.
    pub(crate) fn memory_from(
        descriptor: Descriptor,
        data: Arc<[u8]>,
        input: &str,
        context: &str,
    ) -> Blob {
        let mut blob = Blob::new_in_memory(descriptor, data);
        blob.label = Arc::new(Label {
            input: input.to_owned(),
            digest: blob.label.digest.clone(),
            context: context.to_owned(),
        });
        blob
    }

    /// A blob stored in `region` of a file of `input`; `verified` if its digest
    /// was already computed from these bytes.
    pub(crate) fn from_file(
        descriptor: Descriptor,
        region: FileRegion,
        input: &str,
        context: &str,
        verified: bool,
    ) -> Blob {
        let label = Label {
            input: input.to_owned(),
            digest: descriptor.digest().to_string(),
            context: context.to_owned(),
        };
        Blob {
            descriptor,
            data: Data::File(region),
            verified: Arc::new(AtomicBool::new(verified)),
            verifying: Arc::default(),
            label: Arc::new(label),
        }
    }

    /// A blob stored in the file at `path` (a blob file of a directory the
    /// caller read, e.g. a BuildKit cache), verified as it is streamed;
    /// `input` and `context` name it in messages. Fails when the file cannot
    /// be opened or its size is not the descriptor's.
    pub fn from_path(
        descriptor: Descriptor,
        path: &std::path::Path,
        input: &str,
        context: &str,
    ) -> Result<Blob, Error> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Blob::from_open_file(
            descriptor,
            file,
            &path.display().to_string(),
            input,
            context,
        )
    }

    /// A blob stored in the open regular `file` (named `path` in messages),
    /// verified as it is streamed; as [`Blob::from_path`].
    pub fn from_open_file(
        descriptor: Descriptor,
        file: File,
        path: &str,
        input: &str,
        context: &str,
    ) -> Result<Blob, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        if len != descriptor.size() {
            return Err(Error::SizeMismatch {
                input: input.to_owned(),
                digest: descriptor.digest().to_string(),
                context: context.to_owned(),
                expected: descriptor.size(),
                actual: len,
            });
        }
        let region = FileRegion {
            file: Arc::new(file),
            offset: 0,
            len,
        };
        Ok(Blob::from_file(descriptor, region, input, context, false))
    }

    /// The descriptor the blob was first reached by.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The input the blob comes from, for messages.
    pub(crate) fn input_name(&self) -> &str {
        &self.label.input
    }

    /// The blob's size in bytes, as its descriptor says (checked against the
    /// file when the image was opened).
    pub fn size(&self) -> u64 {
        self.descriptor.size()
    }

    /// Whether the blob's digest has been checked (always true in memory).
    pub fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    /// How many bytes the blob's storage holds (the file or tar entry size).
    pub(crate) fn stored_len(&self) -> u64 {
        match &self.data {
            Data::Memory(bytes) => bytes.len() as u64,
            Data::File(region) => region.len,
        }
    }

    /// A reader over the blob's bytes that verifies size and digest at the end.
    pub fn open(&self) -> BlobReader {
        BlobReader {
            stream: self.stream(),
            failed: None,
        }
    }

    /// Like [`Blob::open`], but shares verification with concurrent
    /// consumers: while another consumer is hashing this blob, it blocks
    /// until that one is done, and then reads without hashing. So however
    /// many consumers read a blob at once, its bytes are hashed (and read
    /// from disk) once. May block: call it off the async executor.
    pub fn open_shared(&self) -> BlobReader {
        let claim = self.claim_or_wait();
        BlobReader {
            stream: Stream {
                claim,
                ..self.stream()
            },
            failed: None,
        }
    }

    /// Returns `None` once the blob is verified (waiting for a concurrent
    /// verification to end), or the right to verify it.
    fn claim_or_wait(&self) -> Option<Claim> {
        loop {
            if self.is_verified() {
                return None;
            }
            if let Some(claim) = Claim::take(&self.verifying) {
                // It may have been verified just before the claim.
                return (!self.is_verified()).then_some(claim);
            }
            self.verifying.wait();
        }
    }

    fn stream(&self) -> Stream {
        Stream {
            claim: None,
            data: self.data.clone(),
            pos: 0,
            size: self.size(),
            hasher: Hasher::default(),
            // A blob already verified (or trusted, in memory) is not hashed
            // again: later consumers only pay for the copy.
            hash: !self.is_verified(),
            done: false,
            verified: Arc::clone(&self.verified),
            label: Arc::clone(&self.label),
        }
    }

    /// Verifies the blob now, on the calling thread, if it is stored in a
    /// file, not verified yet and no other consumer is verifying it; else
    /// returns at once. Stops early (leaving it unverified) once `stop` is
    /// set. A mismatch is not reported here: the blob stays unverified and
    /// the consumers that read it meet the error themselves. Meant to run
    /// ahead of the consumers on a spare core: a consumer that finds it
    /// busy copies meanwhile and waits for the verdict (see
    /// [`Blob::copy_to_file`]), so nothing is hashed twice.
    pub fn verify_if_idle(&self, stop: &AtomicBool) {
        if self.is_verified() || matches!(self.data, Data::Memory(_)) {
            return;
        }
        if let Some(claim) = Claim::take(&self.verifying) {
            // A mismatch is left for the consumers to meet.
            let _ = self.hash_to_end(claim, stop);
        }
    }

    /// Reads the blob to its end under `claim`, hashing it: it ends
    /// verified, or with the mismatch (or read error) returned. Stops early,
    /// leaving it unverified, once `stop` is set.
    fn hash_to_end(&self, claim: Claim, stop: &AtomicBool) -> Result<(), Error> {
        let mut stream = Stream {
            claim: Some(claim),
            ..self.stream()
        };
        let mut buf = Chunk::take();
        // The stream verifies when it reads the last byte (or, for an empty
        // blob, meets the end).
        while !stream.done && !stop.load(Ordering::Relaxed) {
            if stream.read(&mut buf)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The whole blob, verified; an error if it is larger than `limit` bytes.
    pub fn read_all(&self, limit: u64) -> Result<Vec<u8>, Error> {
        let size = self.size();
        if size > limit {
            return Err(Error::TooLarge {
                input: self.label.input.clone(),
                digest: self.label.digest.clone(),
                context: self.label.context.clone(),
                size,
                limit,
            });
        }
        let len = usize::try_from(size).map_err(|_| self.too_large(limit))?;
        let mut out = vec![0; len];
        let mut stream = self.stream();
        let mut filled = 0;
        while filled < len {
            filled += stream.read(&mut out[filled..])?;
        }
        stream.finish_if_empty()?;
        Ok(out)
    }

    fn too_large(&self, limit: u64) -> Error {
        Error::TooLarge {
            input: self.label.input.clone(),
            digest: self.label.digest.clone(),
            context: self.label.context.clone(),
            size: self.size(),
            limit,
        }
    }

    fn io_error(&self, source: io::Error) -> Error {
        self.label.io_error(source)
    }

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
        self.verify()?;
        let copied = match &self.data {
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

    /// Verifies the whole blob now, unless it is already (waiting for a
    /// consumer verifying it meanwhile).
    fn verify(&self) -> Result<(), Error> {
        match self.claim_or_wait() {
            Some(claim) => self.hash_to_end(claim, &AtomicBool::new(false)),
            None => Ok(()),
        }
    }

    fn copy(&self, dest: &File, offset: u64) -> Result<u64, CopyError> {
        let size = self.size();
        match &self.data {
            Data::Memory(bytes) => {
                let bytes = usize::try_from(size)
                    .ok()
                    .and_then(|len| bytes.get(..len))
                    .ok_or_else(|| self.stream().short())?;
                dest.write_all_at(bytes, offset).map_err(CopyError::Io)?;
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
        dest.write_all_at(&buf, offset + written)
            .map_err(CopyError::Io)?;
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

/// Whether a consumer is verifying a blob, and a way to wait for it.
#[derive(Debug, Default)]
struct Verifying {
    busy: Mutex<bool>,
    done: Condvar,
}

impl Verifying {
    fn lock(&self) -> std::sync::MutexGuard<'_, bool> {
        self.busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a consumer holds the claim now.
    fn is_busy(&self) -> bool {
        *self.lock()
    }

    /// Blocks while another consumer holds the claim.
    fn wait(&self) {
        let mut busy = self.lock();
        while *busy {
            busy = self
                .done
                .wait(busy)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The right to verify a blob; dropping it (verified or not) wakes the
/// consumers waiting for it.
#[derive(Debug)]
struct Claim(Arc<Verifying>);

impl Claim {
    fn take(verifying: &Arc<Verifying>) -> Option<Claim> {
        let mut busy = verifying.lock();
        if *busy {
            return None;
        }
        *busy = true;
        Some(Claim(Arc::clone(verifying)))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        *self.0.lock() = false;
        self.0.done.notify_all();
    }
}

/// The verifying cursor shared by [`BlobReader`], `read_all` and `copy_to_file`.
struct Stream {
    /// Held while this pass verifies the blob for every consumer.
    claim: Option<Claim>,
    data: Data,
    pos: u64,
    size: u64,
    hasher: Hasher,
    /// Whether this pass hashes the bytes (false once the blob is verified).
    hash: bool,
    done: bool,
    verified: Arc<AtomicBool>,
    label: Arc<Label>,
}

impl Stream {
    fn at_end(&self) -> bool {
        self.pos >= self.size
    }

    /// Reads up to `buf.len()` bytes; verifies when the last byte is read.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.at_end() {
            if !buf.is_empty() {
                self.finish_if_empty()?;
            }
            return Ok(0);
        }
        let n = self.read_raw(buf)?;
        if self.hash {
            self.hasher.update(&buf[..n]);
        }
        if self.at_end() {
            self.finish()?;
        }
        Ok(n)
    }

    /// Reads up to `buf.len()` bytes without hashing them; an error if the
    /// storage ends before the blob does.
    fn read_raw(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let want = usize::try_from(self.size - self.pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = match &self.data {
            Data::Memory(bytes) => {
                let start = usize::try_from(self.pos).unwrap_or(usize::MAX);
                let src = bytes.get(start..).unwrap_or_default();
                let n = want.min(src.len());
                buf[..n].copy_from_slice(&src[..n]);
                n
            }
            Data::File(region) => {
                let avail = region.len.saturating_sub(self.pos);
                let want = want.min(usize::try_from(avail).unwrap_or(usize::MAX));
                if want == 0 {
                    0
                } else {
                    loop {
                        match region
                            .file
                            .read_at(&mut buf[..want], region.offset + self.pos)
                        {
                            Ok(n) => break n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(self.io_error(e)),
                        }
                    }
                }
            }
        };
        if n == 0 {
            return Err(self.short());
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Verifies a blob of size 0 (no read ever reaches its last byte).
    fn finish_if_empty(&mut self) -> Result<(), Error> {
        if !self.done && self.at_end() {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.done = true;
        // Whatever the outcome, waiting consumers may go on once this
        // returns (release happens when the claim is dropped).
        let _claim = self.claim.take();
        if !self.hash {
            return Ok(()); // verified before this pass, or trusted as given
        }
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.label.digest {
            return Err(Error::DigestMismatch {
                input: self.label.input.clone(),
                digest: self.label.digest.clone(),
                context: self.label.context.clone(),
                actual,
            });
        }
        self.verified.store(true, Ordering::Release);
        Ok(())
    }

    fn short(&self) -> Error {
        Error::ShortBlob {
            input: self.label.input.clone(),
            digest: self.label.digest.clone(),
            context: self.label.context.clone(),
            read: self.pos,
            expected: self.size,
        }
    }

    fn io_error(&self, source: io::Error) -> Error {
        self.label.io_error(source)
    }
}

/// Streams a blob: `Read` with positioned reads in the caller's chunk size,
/// hashing as it goes. When the last byte is read the size and digest are
/// compared with the descriptor; a mismatch, or a file that ends early, is an
/// `io::Error` of kind `InvalidData` carrying the one-line message. A
/// successful full read marks the blob verified.
pub struct BlobReader {
    stream: Stream,
    failed: Option<String>,
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(message) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, message.clone()));
        }
        self.stream.read(buf).map_err(|e| {
            self.failed = Some(e.to_string());
            let kind = match &e {
                Error::BlobIo { source, .. } => source.kind(),
                _ => io::ErrorKind::InvalidData,
            };
            io::Error::new(kind, e)
        })
    }
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("digest", &self.stream.label.digest)
            .field("pos", &self.stream.pos)
            .field("size", &self.stream.size)
            .finish()
    }
}
