//! Writing into a file in small pieces.
//!
//! The kernel gives a file's page cache folios as large as each write (up
//! to 2 MiB on ext4). Folios of 64 KiB and more come from free memory that
//! a hypervisor with free page reporting may have taken back, and handing
//! it again costs ~22 µs per 4 KiB page, while folios of up to 32 KiB
//! reuse pages the kernel freed lately: on the development VM, `dd` of
//! 464 MB into a fresh filesystem took 0.13–0.17 s of system time in
//! 16 KiB writes and 3.0–3.6 s in 1 MiB writes (docs/benchmark.md).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

/// The largest write [`write_all_at`] makes (`curl`'s write size).
pub const WRITE_SIZE: usize = 16 << 10;

/// Writes all of `data` at `offset` of `file`, in positioned writes of at
/// most [`WRITE_SIZE`] bytes.
pub fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    let mut at = offset;
    for piece in data.chunks(WRITE_SIZE) {
        file.write_all_at(piece, at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// A writer that passes what it is given on in writes of at most
/// [`WRITE_SIZE`] bytes (for a `BufWriter` whose larger buffer would
/// otherwise reach the file in one write).
#[derive(Debug)]
pub struct SmallWrites<W>(pub W);

impl<W: Write> Write for SmallWrites<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(WRITE_SIZE)])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
