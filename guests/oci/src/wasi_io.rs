//! Small helpers over the generated `wasi:filesystem` and `wasi:io` bindings,
//! turning their errors into the contract's `error::io` with context.

use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::preopens;
use crate::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};

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

/// The preopened directory called `name`.
pub fn preopen(name: &str) -> Result<Descriptor, Error> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, n)| (n == name).then_some(dir))
        .ok_or_else(|| Error::Io(format!("no preopened directory named {name:?}")))
}

/// Creates (or truncates) `path` in `dir`, opened for writing.
pub fn create_file(dir: &Descriptor, path: &str) -> Result<Descriptor, Error> {
    dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::CREATE | OpenFlags::TRUNCATE,
        DescriptorFlags::WRITE,
    )
    .map_err(|e| fs_error(&format!("creating {path}"), e))
}

/// Creates the directory `path` in `dir`; one that already exists is fine.
pub fn create_dir(dir: &Descriptor, path: &str) -> Result<(), Error> {
    match dir.create_directory_at(path) {
        Ok(()) | Err(ErrorCode::Exist) => Ok(()),
        Err(e) => Err(fs_error(&format!("creating directory {path}"), e)),
    }
}

/// Writes a small file (`index.json`, `oci-layout`) whole.
pub fn write_file(dir: &Descriptor, path: &str, mut bytes: &[u8]) -> Result<(), Error> {
    let file = create_file(dir, path)?;
    let mut offset = 0u64;
    while !bytes.is_empty() {
        let n = file
            .write(bytes, offset)
            .map_err(|e| fs_error(&format!("writing {path}"), e))?;
        if n == 0 {
            return Err(Error::Io(format!("writing {path}: no progress")));
        }
        let n = usize::try_from(n).unwrap_or(bytes.len()).min(bytes.len());
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Writes all of `bytes` to `stream`, waiting for room as the stream asks
/// (`check-write`, `write`, `subscribe`). Does not flush.
pub fn write_all(stream: &OutputStream, mut bytes: &[u8], context: &str) -> Result<(), Error> {
    while !bytes.is_empty() {
        let room = stream.check_write().map_err(|e| stream_error(context, e))?;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        stream
            .write(&bytes[..n])
            .map_err(|e| stream_error(context, e))?;
        bytes = &bytes[n..];
    }
    Ok(())
}
