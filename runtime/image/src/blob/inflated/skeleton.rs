//! A view's skeleton: the bytes of its tar a header-only reader reads
//! (header blocks, the data of extension entries, the archive's tail),
//! kept in an unnamed temporary file with an in-memory index of where
//! each run of them sits in the tar.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::pieces::write_all_at;

/// A run of consecutive tar bytes kept in the skeleton's file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// Where the run starts in the tar.
    tar: u64,
    /// Where it starts in the file.
    file: u64,
    /// Its length.
    len: u64,
}

/// Most segments kept: past this many the recording stops (a tar of many
/// tiny files then reads the rest through decoders: slower, never wrong).
const MAX_SEGMENTS: usize = 1 << 20;

/// Bytes buffered before one positioned write to the file.
const BUFFER: usize = 1 << 20;

/// The recorded bytes of a tar: what is not here is read by decompressing.
#[derive(Debug)]
pub(crate) struct Skeleton {
    file: File,
    segments: Vec<Segment>,
}

impl Skeleton {
    /// The bytes recorded at `pos` of the tar, up to `buf.len()` and to the
    /// end of the run holding `pos`; `Ok(0)` if `pos` is not recorded.
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let after = self.segments.partition_point(|s| s.tar <= pos);
        let Some(segment) = after.checked_sub(1).map(|i| self.segments[i]) else {
            return Ok(0);
        };
        let into = pos - segment.tar;
        if into >= segment.len {
            return Ok(0);
        }
        let want = usize::try_from(segment.len - into)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.file
            .read_exact_at(&mut buf[..want], segment.file + into)?;
        Ok(want)
    }

    /// How many bytes of the tar are recorded.
    #[cfg(test)]
    pub(crate) fn recorded(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }
}

/// Writes a skeleton as the tar passes: [`Recorder::keep`] the bytes at a
/// tar offset, [`Recorder::finish`] for the skeleton. A failed write (a
/// full disk) only ends the recording early.
pub(crate) struct Recorder {
    file: File,
    segments: Vec<Segment>,
    buffer: Vec<u8>,
    /// Bytes of the file written so far (the buffer goes after them).
    written: u64,
    stopped: bool,
}

impl Recorder {
    pub(crate) fn new(file: File) -> Recorder {
        Recorder {
            file,
            segments: Vec::new(),
            buffer: Vec::new(),
            written: 0,
            stopped: false,
        }
    }

    /// Keeps `bytes`, which sit at `tar` in the tar.
    pub(crate) fn keep(&mut self, tar: u64, bytes: &[u8]) {
        if self.stopped || bytes.is_empty() {
            return;
        }
        let file = self.written + self.buffer.len() as u64;
        let full = self.segments.len() >= MAX_SEGMENTS;
        match self.segments.last_mut() {
            Some(last) if last.tar + last.len == tar => last.len += bytes.len() as u64,
            _ if full => {
                self.stopped = true;
                return;
            }
            _ => self.segments.push(Segment {
                tar,
                file,
                len: bytes.len() as u64,
            }),
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= BUFFER {
            self.flush();
        }
    }

    /// Writes the buffer out; on failure, forgets what it held and stops.
    fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        match write_all_at(&self.file, &self.buffer, self.written) {
            Ok(()) => {
                self.written += self.buffer.len() as u64;
                self.buffer.clear();
            }
            Err(_) => {
                self.stopped = true;
                self.buffer = Vec::new();
                let written = self.written;
                self.segments.retain_mut(|s| {
                    s.len = s.len.min(written.saturating_sub(s.file));
                    s.len > 0
                });
            }
        }
    }

    /// Ends the recording.
    pub(crate) fn finish(mut self) -> Skeleton {
        self.flush();
        self.segments.shrink_to_fit();
        Skeleton {
            file: self.file,
            segments: self.segments,
        }
    }
}
