//! Following a file output while its guest writes it, for the docker
//! daemon's load: the file opened beneath the staging directory without
//! following a link (a FIFO or a symlink the guest put there is skipped,
//! never opened for reading), the bytes appended since the last look read
//! with `pread` from the host's own descriptor, hashed as they are handed
//! out, and only whole tar entries' worth of them: each tar header is
//! checked before it is handed out, and the first one that is not an
//! ordinary entry (the zero block ending an archive, a pax header, bytes
//! that are no tar at all) stops the following for good, so the bytes
//! handed out never hold the end of an archive. What is held back goes
//! when the instance has succeeded, after [`prefix_digest`] of the final
//! file shows the bytes handed out are still its beginning.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use bytes::Bytes;
use cap_std::fs::Dir;
use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest, Sha256};

/// Most bytes read (and handed out) per step.
pub const CHUNK: usize = 1 << 20;

/// A tar block.
const BLOCK: usize = 512;

/// A file of the staging directory being followed as it grows.
pub struct Follower {
    dir: Dir,
    name: String,
    file: Option<File>,
    /// Bytes handed out: always the file's first `sent` bytes as read.
    sent: u64,
    /// Where the next tar header starts (at or after `sent`).
    next_header: u64,
    /// No more bytes are handed out before the end.
    stopped: bool,
    /// Never hand out more than this (the instance's output limit).
    max_bytes: u64,
    hasher: Sha256,
}

impl Follower {
    /// Follows `name` in `dir` (the staging directory); at most
    /// `max_bytes` of it are ever handed out.
    pub fn new(dir: Dir, name: &str, max_bytes: u64) -> Follower {
        Follower {
            dir,
            name: name.to_owned(),
            file: None,
            sent: 0,
            next_header: 0,
            stopped: false,
            max_bytes,
            hasher: Sha256::new(),
        }
    }

    /// True once nothing more will be handed out before the end.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The bytes handed out so far and their sha256.
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.sent, self.hasher.finalize().into())
    }

    /// One look at the file: the bytes after those handed out that may go
    /// now (whole tar headers checked), or `None` when there are none yet.
    /// A read error stops the following (the end sends the whole file).
    pub fn step(&mut self) -> Option<Bytes> {
        if self.stopped {
            return None;
        }
        match self.read_next() {
            Ok(bytes) => bytes,
            Err(_) => {
                self.stopped = true;
                None
            }
        }
    }

    fn read_next(&mut self) -> io::Result<Option<Bytes>> {
        let (sent, max_bytes) = (self.sent, self.max_bytes);
        let Some(file) = self.open()? else {
            return Ok(None);
        };
        let len = file.metadata()?.len().min(max_bytes);
        if len <= sent {
            return Ok(None);
        }
        let want = usize::try_from(len - sent).map_or(CHUNK, |n| n.min(CHUNK));
        let mut buf = vec![0u8; want];
        let read = file.read_at(&mut buf, sent)?;
        buf.truncate(read);
        let (take, next, stop) = walk(&buf, self.next_header - self.sent);
        self.next_header = self.sent + next;
        self.stopped = stop;
        if take == 0 {
            return Ok(None);
        }
        buf.truncate(take);
        self.hasher.update(&buf);
        self.sent += take as u64;
        Ok(Some(Bytes::from(buf)))
    }

    /// The file, opened once it is a regular file.
    fn open(&mut self) -> io::Result<Option<&File>> {
        if self.file.is_none() {
            let flags = OFlags::RDONLY
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::CLOEXEC
                | OFlags::NOCTTY;
            let fd = match rustix::fs::openat(&self.dir, self.name.as_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                // Not there yet, or (for now) a symlink.
                Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::LOOP => {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
                return Ok(None);
            }
            self.file = Some(File::from(fd));
        }
        Ok(self.file.as_ref())
    }
}

/// Walks the tar headers of `buf` (the file's bytes from the first not
/// handed out), the next one at `header`: returns how many bytes of `buf`
/// may go (up to a header not yet whole or not checked), where the next
/// header is, and whether the walk stops for good (a zero block, a header
/// that is not an ordinary ustar entry).
fn walk(buf: &[u8], header: u64) -> (usize, u64, bool) {
    let mut at = header;
    loop {
        let Ok(start) = usize::try_from(at) else {
            return (buf.len(), at, false);
        };
        if start >= buf.len() {
            return (buf.len(), at, false);
        }
        let Some(block) = buf.get(start..start + BLOCK) else {
            return (start, at, false);
        };
        match entry_size(block) {
            Some(size) => at += (BLOCK as u64) + size.div_ceil(BLOCK as u64) * BLOCK as u64,
            None => return (start, at, true),
        }
    }
}

/// The size of the data after tar header `block`, or `None` for a zero
/// block (the end of an archive), a bad checksum, a size not in octal, or
/// a kind whose header changes how what follows is read (pax, GNU sparse).
fn entry_size(block: &[u8]) -> Option<u64> {
    if block.iter().all(|b| *b == 0) {
        return None;
    }
    // The header's bytes summed as unsigned and as signed bytes (old
    // writers), the checksum field counted as eight spaces.
    let (unsigned, signed) = block
        .iter()
        .enumerate()
        .fold((0u64, 0i64), |(u, s), (i, b)| {
            if (148..156).contains(&i) {
                (u + 32, s + 32)
            } else {
                (u + u64::from(*b), s + i64::from(*b as i8))
            }
        });
    let checksum = octal(&block[148..156])?;
    if checksum != unsigned && i64::try_from(checksum).ok() != Some(signed) {
        return None;
    }
    match block[156] {
        // Regular files (and GNU long names, whose data is the name).
        b'0' | 0 | b'7' | b'L' | b'K' => octal(&block[124..136]),
        // Header-only kinds: no data, whatever the size field says.
        b'1'..=b'6' => Some(0),
        _ => None,
    }
}

/// An octal number field (NUL- or space-terminated, maybe space-padded).
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The sha256 of the first `len` bytes of `file`, read no later than
/// `deadline`; `None` when the file is shorter.
pub fn prefix_digest(file: &File, len: u64, deadline: Instant) -> io::Result<Option<[u8; 32]>> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    while at < len {
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the time limit"));
        }
        let want = usize::try_from(len - at).map_or(CHUNK, |n| n.min(CHUNK));
        let read = file.read_at(&mut buf[..want], at)?;
        if read == 0 {
            return Ok(None);
        }
        hasher.update(&buf[..read]);
        at += read as u64;
    }
    Ok(Some(hasher.finalize().into()))
}

#[cfg(test)]
mod tests;
