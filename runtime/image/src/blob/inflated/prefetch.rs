//! A decoder that runs ahead of its reader on a thread of its own: while
//! the reader writes one file's bytes, the next ones are decompressed on
//! another core. At most [`AHEAD`] pieces of [`PIECE`] bytes wait; the
//! thread stops at the end of the tar, on a failure, or when the
//! [`Prefetch`] is dropped (which waits for it).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use super::cursor::Cursor;

/// Bytes one piece holds.
const PIECE: usize = 256 << 10;
/// Pieces decoded ahead of the reader at most.
const AHEAD: usize = 4;

/// A decoder on its own thread and the pieces it has decoded.
pub(crate) struct Prefetch {
    pieces: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    recycle: mpsc::Sender<Vec<u8>>,
    /// The piece being read and how much of it was.
    current: Vec<u8>,
    used: usize,
    /// Where in the tar the next byte handed out is.
    pos: u64,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<Option<Cursor>>>>,
}

impl Prefetch {
    /// Runs `cursor` ahead on a new thread, up to `size` (the tar's end).
    pub(crate) fn start(cursor: Cursor, size: u64) -> io::Result<Prefetch> {
        let pos = cursor.pos();
        let (send, pieces) = mpsc::sync_channel(AHEAD);
        let (recycle, spare) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("outport-inflate".into())
            .spawn(move || run(cursor, size, &send, &spare, &stopped))?;
        Ok(Prefetch {
            pieces: Some(pieces),
            recycle,
            current: Vec::new(),
            used: 0,
            pos,
            stop,
            thread: Some(thread),
        })
    }

    /// Where in the tar the next byte read is.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next bytes of the tar.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.fill()?;
        let n = buf.len().min(self.current.len() - self.used);
        buf[..n].copy_from_slice(&self.current[self.used..self.used + n]);
        self.used += n;
        self.pos += n as u64;
        Ok(n)
    }

    /// Drops the bytes up to `target` (at or after `pos`).
    pub(crate) fn advance_to(&mut self, target: u64) -> io::Result<()> {
        while self.pos < target {
            self.fill()?;
            let left = (self.current.len() - self.used) as u64;
            let n = left.min(target - self.pos);
            self.used += n as usize;
            self.pos += n;
        }
        Ok(())
    }

    /// Makes sure the current piece has bytes left, waiting for the next.
    fn fill(&mut self) -> io::Result<()> {
        if self.used < self.current.len() {
            return Ok(());
        }
        let next = match &self.pieces {
            Some(pieces) => pieces.recv(),
            None => Err(mpsc::RecvError),
        };
        match next {
            Ok(Ok(piece)) => {
                let done = std::mem::replace(&mut self.current, piece);
                let _ = self.recycle.send(done);
                self.used = 0;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvError) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the decompressed layer ends at byte {}", self.pos),
            )),
        }
    }

    /// Stops the thread and returns its decoder (none once it reached the
    /// tar's end and checked its source), or how it failed.
    pub(crate) fn into_cursor(mut self) -> io::Result<Option<Cursor>> {
        self.halt()
    }

    fn halt(&mut self) -> io::Result<Option<Cursor>> {
        self.stop.store(true, Ordering::Release);
        // A thread blocked on a full queue wakes up to a closed one.
        self.pieces = None;
        let thread = self.thread.take();
        let joined = thread.map(|t| t.join());
        match joined {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(io::Error::other("a decoding thread panicked")),
            None => Err(io::Error::other("the decoder was stopped before")),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// The thread: decodes pieces until the tar ends, the reader goes, or a
/// failure (sent to the reader, and returned); returns the decoder, or
/// none if it reached the end, where it checks the source at once (and
/// frees the decoder's memory).
fn run(
    mut cursor: Cursor,
    size: u64,
    send: &mpsc::SyncSender<io::Result<Vec<u8>>>,
    spare: &mpsc::Receiver<Vec<u8>>,
    stop: &AtomicBool,
) -> io::Result<Option<Cursor>> {
    while cursor.pos() < size && !stop.load(Ordering::Acquire) {
        let mut piece = spare.try_recv().unwrap_or_default();
        let want = usize::try_from(size - cursor.pos())
            .unwrap_or(PIECE)
            .min(PIECE);
        piece.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            match cursor.read(&mut piece[filled..]) {
                Ok(n) => filled += n,
                Err(e) => {
                    let _ = send.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            }
        }
        if send.send(Ok(piece)).is_err() {
            break;
        }
    }
    if cursor.pos() < size {
        return Ok(Some(cursor));
    }
    cursor.finish().map(|()| None)
}
