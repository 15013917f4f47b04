//! Ctrl-C and `kill`: once the benchmark mounts filesystems, `SIGINT` and
//! `SIGTERM` only set a flag, so that the run in progress ends (its child
//! gets the terminal's `SIGINT` too), its filesystem is unmounted, and the
//! benchmark stops before the next run ([`check`]).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches `SIGINT` and `SIGTERM` from now on.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

/// Fails once a signal was caught.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
