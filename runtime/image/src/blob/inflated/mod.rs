//! A compressed layer's uncompressed view kept without its decompressed
//! bytes: the compressed source, and a skeleton of the tar (what a
//! header-only reader reads). Everything else is decompressed again when
//! read, by decoders kept in a small pool so that reads and copies in
//! ascending order decompress the layer once.
//!
//! - `skeleton`: the recorded bytes and their index; `walker`: what of the
//!   tar is recorded, found as the tar is first decompressed;
//! - `cursor`: a decoder at a position, hashing the compressed bytes it
//!   reads and checking them at their end; `prefetch`: a decoder running
//!   ahead of its reader on a thread of its own.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

mod cursor;
mod prefetch;
mod skeleton;
mod walker;

use cursor::Cursor;
pub(crate) use cursor::{Codec, ZSTD_MAX_WINDOW_LOG};
use prefetch::Prefetch;
pub(crate) use skeleton::{Recorder, Skeleton};
pub(crate) use walker::Walker;

use super::region::FileRegion;

/// Decoders kept per view at most.
const POOL: usize = 4;

/// Idle decoders kept by all the views of one converter (one run) at
/// most: each holds its thread, its buffers and (zstd) its window, so a
/// guest reading many views out of order cannot make the host keep one per
/// view and range. A decoder given back beyond it is finished at once.
const IDLE_IN_ALL: usize = 8;

/// How many decoders the views of one converter keep idle now.
pub(crate) type IdleCount = Arc<AtomicUsize>;

/// The compressed bytes of a view's layer.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) region: FileRegion,
    pub(crate) codec: Codec,
    /// The layer's digest (`sha256:…`), which its bytes must hash to.
    pub(crate) digest: Arc<str>,
}

/// A view's data: its source, its skeleton, its idle decoders, and the
/// first failure of the source met by any of them.
pub(crate) struct Inflated {
    source: Source,
    skeleton: Skeleton,
    /// The tar's size.
    size: u64,
    idle: Mutex<Vec<Prefetch>>,
    /// Idle decoders of every view of the same converter.
    idle_in_all: IdleCount,
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for Inflated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflated")
            .field("source", &self.source)
            .field("skeleton", &self.skeleton)
            .finish_non_exhaustive()
    }
}

impl Inflated {
    pub(crate) fn new(
        source: Source,
        skeleton: Skeleton,
        size: u64,
        idle_in_all: IdleCount,
    ) -> Inflated {
        Inflated {
            source,
            skeleton,
            size,
            idle: Mutex::default(),
            idle_in_all,
            failure: Mutex::default(),
        }
    }

    pub(crate) fn skeleton(&self) -> &Skeleton {
        &self.skeleton
    }

    /// A decoder at `start`: the idle one furthest along but not past it,
    /// or a new one from the start of the tar, moved on to `start`.
    pub(crate) fn lease(self: &Arc<Self>, start: u64) -> io::Result<Lease> {
        let taken = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let best = (0..idle.len())
                .filter(|&i| idle[i].pos() <= start)
                .max_by_key(|&i| idle[i].pos());
            best.map(|i| {
                self.idle_in_all.fetch_sub(1, Ordering::AcqRel);
                idle.swap_remove(i)
            })
        };
        let mut cursor = match taken {
            Some(cursor) => cursor,
            None => Prefetch::start(Cursor::new(&self.source)?, self.size)?,
        };
        match cursor.advance_to(start) {
            Ok(()) => Ok(Lease {
                cursor: Some(cursor),
                home: Arc::clone(self),
            }),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// Notes `e` of a decoder when the source is at fault (it changed, or
    /// it ends early), and returns it.
    fn failed(&self, e: io::Error) -> io::Error {
        if matches!(
            e.kind(),
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
        ) {
            self.failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| e.to_string());
        }
        e
    }

    /// Keeps `cursor` for later reads (unless it is at the tar's end);
    /// with the pool full, the one least along goes (its source bytes
    /// hashed to their end first).
    fn give_back(&self, cursor: Prefetch) {
        // A place among the idle decoders of every view, or none.
        let placed = self
            .idle_in_all
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < IDLE_IN_ALL).then_some(n + 1)
            })
            .is_ok();
        if !placed {
            self.finish(cursor);
            return;
        }
        let evicted = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.push(cursor);
            if idle.len() > POOL {
                let least = (0..idle.len()).min_by_key(|&i| idle[i].pos());
                least.map(|i| {
                    self.idle_in_all.fetch_sub(1, Ordering::AcqRel);
                    idle.swap_remove(i)
                })
            } else {
                None
            }
        };
        if let Some(cursor) = evicted {
            self.finish(cursor);
        }
    }

    /// Checks the source against its digest for every decoder that read
    /// part of it: the idle ones read theirs to the end now. The first
    /// failure met by any decoder of the view is the answer.
    pub(crate) fn check_source(&self) -> Result<(), String> {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        self.idle_in_all.fetch_sub(idle.len(), Ordering::AcqRel);
        for cursor in idle {
            self.finish(cursor);
        }
        match &*self.failure.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }

    /// Stops `cursor` and reads (and hashes) the rest of its compressed
    /// bytes; a failure is noted.
    fn finish(&self, cursor: Prefetch) {
        let finished = match cursor.into_cursor() {
            Ok(Some(cursor)) => cursor.finish(),
            Ok(None) => Ok(()), // checked at the end of the tar
            Err(e) => Err(e),
        };
        if let Err(e) = finished {
            self.failed(e);
        }
    }

    /// Where the idle decoders are (for tests).
    #[cfg(test)]
    pub(crate) fn idle(&self) -> Vec<u64> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.iter().map(Prefetch::pos).collect()
    }
}

/// A decoder taken from a view's pool, back in it when dropped (unless a
/// read failed).
pub(crate) struct Lease {
    cursor: Option<Prefetch>,
    home: Arc<Inflated>,
}

impl Lease {
    /// Where in the tar the next byte read is.
    pub(crate) fn pos(&self) -> u64 {
        self.cursor.as_ref().map_or(u64::MAX, Prefetch::pos)
    }

    /// Reads the next bytes of the tar.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = match &mut self.cursor {
            Some(cursor) => cursor.read(buf),
            None => Err(io::Error::other("a failed decoder was used again")),
        };
        result.map_err(|e| self.fail(e))
    }

    /// Moves on to `target` (at or after [`Lease::pos`]).
    pub(crate) fn advance_to(&mut self, target: u64) -> io::Result<()> {
        let result = match &mut self.cursor {
            Some(cursor) => cursor.advance_to(target),
            None => Err(io::Error::other("a failed decoder was used again")),
        };
        result.map_err(|e| self.fail(e))
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        self.cursor = None;
        self.home.failed(e)
    }
}

impl Drop for Inflated {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(PoisonError::into_inner);
        self.idle_in_all.fetch_sub(idle.len(), Ordering::AcqRel);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(cursor) = self.cursor.take() {
            self.home.give_back(cursor);
        }
    }
}

#[cfg(test)]
mod tests;
