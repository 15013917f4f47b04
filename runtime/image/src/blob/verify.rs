//! Verifying a blob once for all its consumers: the claim taken or waited
//! for, the whole blob hashed now or ahead of its consumers.

use std::sync::atomic::{AtomicBool, Ordering};

use super::claim::Claim;
use super::handle::Blob;
use super::storage::Data;
use super::stream::Stream;
use crate::chunk::Chunk;
use crate::error::Error;

impl Blob {
    /// Returns `None` once the blob is verified (waiting for a concurrent
    /// verification to end), or the right to verify it.
    pub(super) fn claim_or_wait(&self) -> Option<Claim> {
        loop {
            if self.is_verified() {
                return None;
            }
            if let Some(claim) = Claim::take(&self.verifying) {
                // It may have been verified just before the claim.
                return (!self.is_verified()).then_some(claim);
            }
            self.verifying.wait();
        }
    }

    /// Verifies the blob now, on the calling thread, if it is stored in a
    /// file (not one still to fetch), not verified yet and no other consumer is verifying it; else
    /// returns at once. Stops early (leaving it unverified) once `stop` is
    /// set. A mismatch is not reported here: the blob stays unverified and
    /// the consumers that read it meet the error themselves. Meant to run
    /// ahead of the consumers on a spare core: a consumer that finds it
    /// busy copies meanwhile and waits for the verdict (see
    /// [`Blob::copy_to_file`]), so nothing is hashed twice.
    pub fn verify_if_idle(&self, stop: &AtomicBool) {
        // A blob still to fetch is left to its consumers: verifying ahead
        // must not download what no instance reads.
        if self.is_verified() || !matches!(self.data, Data::File(_)) {
            return;
        }
        if let Some(claim) = Claim::take(&self.verifying) {
            // A mismatch is left for the consumers to meet.
            let _ = self.hash_to_end(claim, stop);
        }
    }

    /// Reads the blob to its end under `claim`, hashing it: it ends
    /// verified, or with the mismatch (or read error) returned. Stops early,
    /// leaving it unverified, once `stop` is set.
    fn hash_to_end(&self, claim: Claim, stop: &AtomicBool) -> Result<(), Error> {
        let mut stream = Stream {
            claim: Some(claim),
            ..self.stream()
        };
        let mut buf = Chunk::take();
        // The stream verifies when it reads the last byte (or, for an empty
        // blob, meets the end).
        while !stream.done && !stop.load(Ordering::Relaxed) {
            if stream.read(&mut buf)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Verifies the whole blob now, unless it is already (waiting for a
    /// consumer verifying it meanwhile).
    pub(super) fn verify(&self) -> Result<(), Error> {
        match self.claim_or_wait() {
            Some(claim) => self.hash_to_end(claim, &AtomicBool::new(false)),
            None => Ok(()),
        }
    }
}
