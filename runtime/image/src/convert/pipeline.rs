//! One conversion on two threads: stage A (the calling thread) reads and
//! decompresses the layer, rewrites its tar when asked and hashes the tar
//! (the diff ID); stage B (a scoped thread) compresses the tar, hashes what
//! it writes and writes it.
//!
//! Why two stages: an export converts its layers a few at once (as many as
//! the cores), and the largest layer's conversion, alone at the end, is its
//! critical path. On one thread it inflated, hashed, compressed and hashed
//! again every byte (a real image's 586 MB layer: ~0.9 s with one core
//! idle); split, decompression and compression overlap.
//!
//! Between the stages a bounded queue of pooled [`Chunk`]s: memory stays at
//! [`CHUNKS_HELD`] chunks whatever the layer's size, and the chunks come
//! back to the pool as stage B is done with them. The tar reaches the
//! compressor in the same order, so the output is the same bytes as on one
//! thread.
//!
//! Errors: the first failure of either stage is the conversion's. A stage
//! that fails drops its end of the queue, and the other stops at its next
//! piece ([`Stopped`]); [`run`] returns once both have, so no thread
//! outlives the conversion.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::chunk::{CHUNK_SIZE, Chunk};
use crate::digest::Hasher;

/// Full chunks waiting for stage B.
const QUEUED: usize = 2;

/// Most chunks one conversion holds: those queued, the one stage A fills
/// and the one stage B compresses.
pub(super) const CHUNKS_HELD: usize = QUEUED + 2;

/// What stage A sends stage B.
enum Piece {
    /// The next bytes of the tar, and where in them each of stage A's reads
    /// or writes ended when the pieces are kept (see [`run`]).
    Data(Chunk, Vec<usize>),
    /// The tar is complete.
    End,
}

/// The read size of a copy on one thread (`io::copy`'s buffer), kept when
/// the pieces are.
const READ_SIZE: usize = 8 << 10;

/// The error a stage stops with when the other one has failed (and gone):
/// never the conversion's answer, the other stage's error is.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the other stage of the conversion stopped")
    }
}

impl std::error::Error for Stopped {}

fn stopped() -> io::Error {
    io::Error::other(Stopped)
}

fn is_stopped(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

/// Runs `produce` as stage A on this thread, writing the tar into a
/// [`Feed`], and `consume` as stage B on a second thread, draining what
/// the feed sends; returns the tar's digest and what `consume` returned,
/// or the first failure.
///
/// With `keep_pieces`, stage A reads in [`READ_SIZE`] pieces and stage B
/// gets every piece stage A read or was written as it was, never one cut
/// across two chunks: a compressor whose output depends on the sizes of
/// the writes it is given (zlib-rs's deflate at its faster levels does)
/// is given the writes a copy on one thread gave it.
pub(super) fn run<T: Send>(
    keep_pieces: bool,
    produce: impl FnOnce(&mut Feed) -> io::Result<()>,
    consume: impl FnOnce(Drain) -> io::Result<T> + Send,
) -> io::Result<(String, T)> {
    std::thread::scope(|scope| {
        let (queue, drain) = sync_channel(QUEUED);
        let stage_b = scope.spawn(move || consume(Drain { queue: drain }));
        let mut feed = Feed {
            queue,
            chunk: None,
            filled: 0,
            ends: keep_pieces.then(Vec::new),
            hasher: Hasher::default(),
        };
        // On a failure the feed is dropped here, before waiting for stage
        // B: stage B then stops at its next piece.
        let produced = produce(&mut feed).and_then(|()| feed.finish());
        let consumed = match stage_b.join() {
            Ok(consumed) => consumed,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match (produced, consumed) {
            (Ok(diff_id), Ok(value)) => Ok((diff_id, value)),
            (Err(a), Err(b)) if is_stopped(&a) => Err(b),
            (Err(a), _) | (Ok(_), Err(a)) => Err(a),
        }
    })
}

/// Stage A's end of the queue: a writer (and filler) of chunks that hashes
/// the bytes it takes.
pub(super) struct Feed {
    queue: SyncSender<Piece>,
    /// The chunk being filled (taken from the pool when needed).
    chunk: Option<Chunk>,
    /// Bytes of `chunk` filled.
    filled: usize,
    /// Where each read or write ended in `chunk`, when the pieces are kept.
    ends: Option<Vec<usize>>,
    hasher: Hasher,
}

impl Feed {
    /// The unfilled part of the chunk being filled, at least `need` bytes
    /// (up to a chunk) long: a chunk with less room is sent first.
    fn room(&mut self, need: usize) -> io::Result<&mut [u8]> {
        if let Some(chunk) = &self.chunk
            && chunk.len() - self.filled < need.min(CHUNK_SIZE)
        {
            self.send()?;
        }
        let chunk = self.chunk.get_or_insert_with(Chunk::take);
        Ok(&mut chunk[self.filled..])
    }

    /// Counts `n` more bytes written into [`Feed::room`]: hashes them and
    /// sends the chunk once full.
    fn filled(&mut self, n: usize) -> io::Result<()> {
        if let Some(chunk) = &self.chunk
            && n > 0
        {
            self.hasher.update(&chunk[self.filled..self.filled + n]);
            self.filled += n;
            if let Some(ends) = &mut self.ends {
                ends.push(self.filled);
            }
            if self.filled == chunk.len() {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Sends the chunk being filled, if any bytes are in it.
    fn send(&mut self) -> io::Result<()> {
        match self.chunk.take() {
            Some(mut chunk) if self.filled > 0 => {
                chunk.truncate(self.filled);
                self.filled = 0;
                let ends = self.ends.as_mut().map(std::mem::take).unwrap_or_default();
                let piece = Piece::Data(chunk, ends);
                self.queue.send(piece).map_err(|_| stopped())
            }
            _ => Ok(()),
        }
    }

    /// Reads all of `reader` straight into chunks (no copy in between).
    pub(super) fn fill_from(&mut self, reader: &mut impl Read) -> io::Result<()> {
        let size = match self.ends {
            Some(_) => READ_SIZE,
            None => CHUNK_SIZE,
        };
        loop {
            let room = self.room(size)?;
            let len = room.len().min(size);
            match reader.read(&mut room[..len]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.filled(n)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends the rest and the end of the tar; returns the tar's digest.
    fn finish(mut self) -> io::Result<String> {
        self.send()?;
        self.queue.send(Piece::End).map_err(|_| stopped())?;
        Ok(self.hasher.finish())
    }
}

impl Write for Feed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let need = match self.ends {
            Some(_) => buf.len(),
            None => 1,
        };
        let room = self.room(need)?;
        let n = room.len().min(buf.len());
        room[..n].copy_from_slice(&buf[..n]);
        self.filled(n)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stage B's end of the queue.
pub(super) struct Drain {
    queue: Receiver<Piece>,
}

impl Drain {
    /// The next bytes of the tar, as the pieces stage A took them when they
    /// are kept (else whole); none at its end; [`Stopped`] when stage A
    /// failed.
    pub(super) fn next_chunk(&mut self) -> io::Result<Option<Pieces>> {
        match self.queue.recv() {
            Ok(Piece::Data(chunk, ends)) => Ok(Some(Pieces { chunk, ends })),
            Ok(Piece::End) => Ok(None),
            Err(_) => Err(stopped()),
        }
    }
}

/// A chunk of the tar, cut as stage A took it.
pub(super) struct Pieces {
    chunk: Chunk,
    ends: Vec<usize>,
}

impl Pieces {
    /// Writes every piece, in order, each with one `write_all`.
    pub(super) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        if self.ends.is_empty() {
            return out.write_all(&self.chunk);
        }
        let mut start = 0;
        for &end in &self.ends {
            out.write_all(&self.chunk[start..end])?;
            start = end;
        }
        Ok(())
    }
}
