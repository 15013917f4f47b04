//! `blob.write-files` out of a compressed layer's view (kept lazily: its
//! bytes are decompressed where read): the calling thread decompresses the
//! files' bytes in list order, one decoder going on from file to file,
//! while other threads create the files, so both run at once. Bytes in
//! flight are bounded: [`QUEUE`] batches of at most [`BATCH`] bytes, and a
//! larger file goes in pieces of that size through a queue of its own.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Instant;

use outport_image::write_all_at;

use super::file::{WriteError, check_deadline, create, finish, shown};
use crate::host::bindings::image::NewFile;
use crate::image::BlobHandle;
use crate::output::beneath::Beneath;

/// Bytes of one batch of small files (and of one piece of a large one).
const BATCH: usize = 1 << 20;
/// Most files in one batch.
const BATCH_FILES: usize = 256;
/// Batches queued for the writers.
const QUEUE: usize = 4;
/// Pieces of one large file queued for its writer.
const PIECES: usize = 2;

/// Files whose bytes sit in `buf` (each: its index in the list and its
/// bytes' place in `buf`), or one large file whose bytes come in pieces.
enum Batch {
    Small {
        buf: Vec<u8>,
        files: Vec<(usize, usize, usize)>,
    },
    Large {
        index: usize,
        pieces: mpsc::Receiver<Vec<u8>>,
    },
}

/// What the threads share: the list, the first failure so far (the
/// lowest index; files after it are not written), spare buffers.
struct Shared<'a> {
    files: &'a [NewFile],
    failed_at: AtomicUsize,
    failures: Mutex<Vec<(usize, WriteError)>>,
    recycle: Mutex<mpsc::Sender<Vec<u8>>>,
}

impl Shared<'_> {
    fn fail(&self, index: usize, e: WriteError) {
        self.failed_at.fetch_min(index, Ordering::AcqRel);
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((index, e));
    }

    /// Whether the file at `index` comes after a failure.
    fn stopped(&self, index: usize) -> bool {
        index > self.failed_at.load(Ordering::Acquire)
    }

    fn give_back(&self, buf: Vec<u8>) {
        let recycle = self.recycle.lock().unwrap_or_else(PoisonError::into_inner);
        // Nobody takes buffers any more once the decoding ended.
        let _ = recycle.send(buf);
    }
}

/// Creates the files of `files` beneath `dir` with their bytes out of the
/// view `blob`, on `writers` threads fed by this one; the first failure in
/// the list's order is the answer.
pub(super) fn write_all(
    dir: &File,
    blob: &BlobHandle,
    files: &[NewFile],
    deadline: Option<Instant>,
    timeout: u64,
    writers: usize,
) -> Result<u64, WriteError> {
    let (recycle, spare) = mpsc::channel();
    let shared = Shared {
        files,
        failed_at: AtomicUsize::new(usize::MAX),
        failures: Mutex::default(),
        recycle: Mutex::new(recycle),
    };
    let (queue, batches) = mpsc::sync_channel::<Batch>(QUEUE);
    let batches = Mutex::new(batches);
    std::thread::scope(|scope| {
        for _ in 0..writers.max(1) {
            scope.spawn(|| write_batches(dir, &batches, &shared, deadline, timeout));
        }
        decode(blob, &shared, &queue, &spare, (deadline, timeout));
        drop(queue);
    });
    let mut failures = shared
        .failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    failures.sort_by_key(|(index, _)| *index);
    match failures.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(files.len() as u64),
    }
}

/// Reads every file's bytes in list order and queues them for the writers.
fn decode(
    blob: &BlobHandle,
    shared: &Shared<'_>,
    queue: &mpsc::SyncSender<Batch>,
    spare: &mpsc::Receiver<Vec<u8>>,
    (deadline, timeout): (Option<Instant>, u64),
) {
    let mut ranges = match blob.ranges() {
        Ok(ranges) => ranges,
        Err(e) => return shared.fail(0, WriteError::Blob(e)),
    };
    // Buffers come back from the writers: a fresh one costs a page fault
    // per 4 KiB on its first fill.
    let take = || {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(BATCH, 0);
        buf
    };
    let mut buf = take();
    let mut small = Vec::new();
    let mut filled = 0;
    for (index, file) in shared.files.iter().enumerate() {
        if shared.stopped(index) {
            break;
        }
        if let Err(e) = check_deadline(deadline, timeout) {
            return shared.fail(index, e);
        }
        let len = usize::try_from(file.len).unwrap_or(usize::MAX);
        let full = filled + len > BATCH || small.len() == BATCH_FILES;
        if full && !small.is_empty() {
            let batch = Batch::Small {
                buf: std::mem::replace(&mut buf, take()),
                files: std::mem::take(&mut small),
            };
            if queue.send(batch).is_err() {
                return;
            }
            filled = 0;
        }
        if len > BATCH {
            let (pieces, receiver) = mpsc::sync_channel(PIECES);
            if queue
                .send(Batch::Large {
                    index,
                    pieces: receiver,
                })
                .is_err()
            {
                return;
            }
            let mut at = 0u64;
            while at < file.len {
                let n = usize::try_from(file.len - at).unwrap_or(BATCH).min(BATCH);
                let mut piece = take();
                piece.truncate(n);
                if let Err(e) = ranges.read_exact_at(file.start + at, &mut piece) {
                    return shared.fail(index, WriteError::Blob(e));
                }
                if pieces.send(piece).is_err() {
                    break; // the writer failed on this file
                }
                at += n as u64;
            }
            continue;
        }
        if let Err(e) = ranges.read_exact_at(file.start, &mut buf[filled..filled + len]) {
            return shared.fail(index, WriteError::Blob(e));
        }
        small.push((index, filled, len));
        filled += len;
    }
    if !small.is_empty() {
        let _ = queue.send(Batch::Small { buf, files: small });
    }
}

/// Takes batches until the queue ends and creates their files.
fn write_batches(
    dir: &File,
    batches: &Mutex<mpsc::Receiver<Batch>>,
    shared: &Shared<'_>,
    deadline: Option<Instant>,
    timeout: u64,
) {
    let mut beneath = Beneath::new(dir);
    loop {
        let next = batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(batch) = next else {
            return;
        };
        match batch {
            Batch::Small { buf, files } => {
                for (index, at, len) in files {
                    if shared.stopped(index) {
                        break;
                    }
                    let written = check_deadline(deadline, timeout).and_then(|()| {
                        write_one(&mut beneath, &shared.files[index], &buf[at..at + len])
                    });
                    if let Err(e) = written {
                        shared.fail(index, e);
                    }
                }
                shared.give_back(buf);
            }
            Batch::Large { index, pieces } => {
                let written = write_large(&mut beneath, &shared.files[index], pieces, shared);
                if let Err(e) = written {
                    shared.fail(index, e);
                }
            }
        }
    }
}

/// Creates `file` with `bytes`, its mode and time.
fn write_one(beneath: &mut Beneath<'_>, file: &NewFile, bytes: &[u8]) -> Result<(), WriteError> {
    let out = create(beneath, file)?;
    write_all_at(&out, bytes, 0).map_err(write_error(file))?;
    finish(&out, file)
}

/// Creates `file` with the bytes that come in `pieces` (as many as it has:
/// fewer means the decoding failed, and the failure is its).
fn write_large(
    beneath: &mut Beneath<'_>,
    file: &NewFile,
    pieces: mpsc::Receiver<Vec<u8>>,
    shared: &Shared<'_>,
) -> Result<(), WriteError> {
    let out = create(beneath, file)?;
    let mut at = 0u64;
    for piece in pieces {
        write_all_at(&out, &piece, at).map_err(write_error(file))?;
        at += piece.len() as u64;
        shared.give_back(piece);
    }
    if at == file.len {
        finish(&out, file)?;
    }
    Ok(())
}

/// The error of a failed write of `file`.
fn write_error(file: &NewFile) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Write {
        path: shown(file),
        source,
    }
}
