//! The right to verify a blob: one consumer at a time hashes it, the others
//! wait for the verdict (or copy meanwhile, see `copy`).

use std::sync::{Arc, Condvar, Mutex};

/// Whether a consumer is verifying a blob, and a way to wait for it.
#[derive(Debug, Default)]
pub(super) struct Verifying {
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
    pub(super) fn is_busy(&self) -> bool {
        *self.lock()
    }

    /// Blocks while another consumer holds the claim.
    pub(super) fn wait(&self) {
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
pub(super) struct Claim(Arc<Verifying>);

impl Claim {
    pub(super) fn take(verifying: &Arc<Verifying>) -> Option<Claim> {
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
