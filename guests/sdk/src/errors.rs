//! Turning `wasi:filesystem` and `wasi:io` errors into the contract's
//! [`Error`], with context.

use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::ErrorCode;
use crate::bindings::wasi::io::streams::StreamError;

/// `error::io("CONTEXT: CODE")` for a filesystem error.
pub fn fs_error(context: &str, code: ErrorCode) -> Error {
    Error::Io(format!("{context}: {}", code.name()))
}

/// `error::io("CONTEXT: …")` for a stream error.
pub fn stream_error(context: &str, err: StreamError) -> Error {
    match err {
        StreamError::LastOperationFailed(e) => {
            Error::Io(format!("{context}: {}", e.to_debug_string()))
        }
        StreamError::Closed => Error::Io(format!("{context}: stream closed")),
    }
}
