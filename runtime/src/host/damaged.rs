//! The first damaged blob an instance was served, kept so that a guest
//! that ignores the error cannot keep an output built from it.

use std::sync::Arc;

/// The first damaged blob (digest or size mismatch, read error) an
/// instance was served. The guest gets the error from the call, but one
/// that goes on and succeeds anyway is failed by the runtime with it: no
/// output built from bytes that are not the image is ever kept.
#[derive(Clone, Debug, Default)]
pub struct DamagedInput(Arc<std::sync::OnceLock<String>>);

impl DamagedInput {
    /// Records `message` unless an earlier damage is recorded.
    pub(crate) fn record(&self, message: String) {
        let _ = self.0.set(message);
    }

    /// Records `e` if it says a blob is damaged.
    pub(crate) fn note(&self, e: &outport_image::Error) {
        if e.is_damaged_blob() {
            self.record(e.to_string());
        }
    }

    /// Records `e` if it says a layer could not be made into its
    /// uncompressed view because of its bytes (damaged, not decompressing,
    /// not a tar), not a limit or the temporary storage.
    pub(crate) fn note_failed_view(&self, e: &outport_image::Error) {
        if matches!(e, outport_image::Error::Convert { .. }) || e.is_damaged_blob() {
            self.record(e.to_string());
        }
    }

    /// Records an error of a blob reader (every one means a damaged blob);
    /// returns its message.
    pub(crate) fn reader_failed(&self, e: &std::io::Error) -> String {
        let message = e.to_string();
        self.record(message.clone());
        message
    }

    /// The first damage recorded.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}
