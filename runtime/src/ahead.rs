//! Verifies an image's blobs on a spare thread while the instances run.
//!
//! A component asks for one blob at a time, and a copy of a blob nobody has
//! verified hashes it while it copies: for many small blobs that work is
//! serial. A [`VerifyAhead`] walks the image's blobs on its own thread and
//! hashes each one no consumer has claimed; a consumer reaching a blob it is
//! hashing copies meanwhile (in the kernel) and waits for the verdict, so
//! nothing is hashed twice and copying overlaps hashing across blobs.
//!
//! It walks every blob of the image, so when the instances read only some
//! (e.g. `docker` picking one platform of an index) it also hashes blobs
//! nobody copies: spare-core work, stopped when the run ends, and never an
//! error (a blob that fails here is left for its consumers to report).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outport_image::Image;

/// The thread verifying ahead; it stops when this is dropped.
pub struct VerifyAhead {
    stop: Arc<AtomicBool>,
}

impl VerifyAhead {
    /// Starts verifying the blobs of `image`; `None` if no thread could be
    /// started (the consumers then verify as they read, as always).
    pub fn start(image: Arc<Image>) -> Option<VerifyAhead> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("outport-verify".into())
            .spawn(move || image.verify_ahead(&flag))
            .ok()?;
        Some(VerifyAhead { stop })
    }
}

impl Drop for VerifyAhead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
