//! Verifies an image's blobs on spare threads while the instances run.
//!
//! A component asks for one blob at a time, and a copy of a blob nobody has
//! verified hashes it while it copies: for many small blobs that work is
//! serial. A [`VerifyAhead`] walks the image's blobs on one thread per core
//! and hashes each one no consumer has claimed; a consumer reaching a blob
//! being hashed copies meanwhile (in the kernel) and waits for the verdict,
//! so nothing is hashed twice, and copying overlaps hashing across blobs.
//! Hashing is most of the work for small blobs (a copy in the kernel costs
//! a fraction of it), so it gets every core: the consumers mostly wait.
//!
//! It walks every blob of the image, so when the instances read only some
//! (e.g. `docker` picking one platform of an index) it also hashes blobs
//! nobody copies: spare-core work, stopped when the run ends, and never an
//! error (a blob that fails here is left for its consumers to report).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use outport_image::Image;

/// Most threads verifying at once.
const MAX_THREADS: usize = 4;

/// The threads verifying ahead; they stop when this is dropped.
pub struct VerifyAhead {
    stop: Arc<AtomicBool>,
}

impl VerifyAhead {
    /// Starts verifying the blobs of `image` on one thread per core (at most
    /// [`MAX_THREADS`]); `None` if no thread could be started (the consumers
    /// then verify as they read, as always).
    pub fn start(image: Arc<Image>) -> Option<VerifyAhead> {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS);
        let mut started = 0;
        for _ in 0..threads {
            let (image, next, stop) = (Arc::clone(&image), Arc::clone(&next), Arc::clone(&stop));
            let spawned = std::thread::Builder::new()
                .name("outport-verify".into())
                .spawn(move || image.verify_ahead(&next, &stop));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(VerifyAhead { stop })
    }
}

impl Drop for VerifyAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
