//! What a conversion may spend: its caller's deadline and scratch bytes,
//! metered on the streams that pass through it.

use std::io::{self, Read, Write};
use std::time::Instant;

/// What one caller may spend on a conversion: the conversion stops, with an
/// [`crate::Error::ConvertLimit`], past its deadline or when it has decompressed,
/// or written, more than `scratch_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The caller's deadline.
    pub deadline: Option<Instant>,
    /// Time limit the deadline comes from, in seconds (for the message).
    pub timeout_secs: u64,
    /// Most bytes of uncompressed tar the conversion reads, and most bytes
    /// it writes to its temporary file.
    pub scratch_bytes: u64,
}

impl Budget {
    /// No limit at all.
    pub fn unlimited() -> Budget {
        Budget {
            deadline: None,
            timeout_secs: 0,
            scratch_bytes: u64::MAX,
        }
    }
}

/// The error a [`Metered`] stream fails with when its budget is spent: the
/// limit (`time` or `scratch`), its value, and one line naming both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Spent {
    pub(super) limit: &'static str,
    pub(super) value: u64,
    pub(super) message: String,
}

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Spent {}

impl Spent {
    /// The spent budget, when `e` is one.
    pub(super) fn of(e: &io::Error) -> Option<Spent> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Spent>())
            .cloned()
    }
}

/// A reader or writer that counts its bytes against a budget and checks
/// the budget's deadline at every call.
pub(super) struct Metered<T> {
    inner: T,
    used: u64,
    budget: Budget,
    /// What the counted bytes are, for the message.
    what: &'static str,
}

impl<T> Metered<T> {
    pub(super) fn new(inner: T, budget: &Budget, what: &'static str) -> Self {
        Metered {
            inner,
            used: 0,
            budget: *budget,
            what,
        }
    }

    /// Fails once the deadline has passed.
    fn check_time(&self) -> io::Result<()> {
        match self.budget.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(io::Error::other(Spent {
                limit: "time",
                value: self.budget.timeout_secs,
                message: format!("time limit of {} s exceeded", self.budget.timeout_secs),
            })),
            _ => Ok(()),
        }
    }

    /// Counts `n` more bytes; fails past the scratch limit.
    fn count(&mut self, n: usize) -> io::Result<()> {
        self.used = self.used.saturating_add(n as u64);
        if self.used > self.budget.scratch_bytes {
            return Err(io::Error::other(Spent {
                limit: "scratch",
                value: self.budget.scratch_bytes,
                message: format!(
                    "scratch limit of {} bytes exceeded ({} passed it)",
                    self.budget.scratch_bytes, self.what
                ),
            }));
        }
        Ok(())
    }

    pub(super) fn into_inner(self) -> T {
        self.inner
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check_time()?;
        let n = self.inner.read(buf)?;
        self.count(n)?;
        Ok(n)
    }
}

impl<W: Write> Write for Metered<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check_time()?;
        let n = self.inner.write(buf)?;
        self.count(n)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
