//! The granted destination: finding the preopened directory, creating files
//! and directories in it, writing bytes to files and streams.
//!
//! Every failure is an [`Error::Io`] naming what was being done.

use crate::bindings::outport::exporter::types::{Destination, Error};
use crate::bindings::wasi::filesystem::preopens;
use crate::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};
use crate::bindings::wasi::io::streams::OutputStream;
use crate::errors::{fs_error, stream_error};

/// The destination of a request, or an error when the runtime granted none.
pub fn granted(destination: Option<Destination>) -> Result<Destination, Error> {
    destination.ok_or_else(|| Error::Other("no destination was granted".to_owned()))
}

/// The preopened directory called `name`.
pub fn preopen(name: &str) -> Result<Descriptor, Error> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, n)| (n == name).then_some(dir))
        .ok_or_else(|| Error::Io(format!("no preopened directory named {name:?}")))
}

/// A file destination (`output-kind.file`), created and opened for
/// writing: returns the file's name (for messages) and the file.
///
/// `what` names the option that asked for a file (for the error when the
/// runtime granted a directory instead), e.g. `"tar=true"`.
pub fn open_file(dest: &Destination, what: &str) -> Result<(String, Descriptor), Error> {
    let name = dest.file.as_deref().ok_or_else(|| {
        Error::Other(format!(
            "{what} needs a file destination, but the runtime granted a directory"
        ))
    })?;
    let dir = preopen(&dest.preopen)?;
    Ok((name.to_owned(), create_file(&dir, name)?))
}

/// A file destination (`output-kind.file`), created and opened as a stream:
/// returns the file's name (for messages) and its write stream.
///
/// `what` names the option that asked for a file (for the error when the
/// runtime granted a directory instead), e.g. `"tar=true"`.
pub fn open_file_stream(dest: &Destination, what: &str) -> Result<(String, OutputStream), Error> {
    let (name, file) = open_file(dest, what)?;
    let stream = file
        .write_via_stream(0)
        .map_err(|e| fs_error(&format!("opening {name} for writing"), e))?;
    Ok((name, stream))
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
pub fn write_file(dir: &Descriptor, path: &str, bytes: &[u8]) -> Result<(), Error> {
    let file = create_file(dir, path)?;
    write_all_at(&file, bytes, 0, &format!("writing {path}"))
}

/// Writes all of `bytes` to `file` at `offset`; errors name `context`.
pub fn write_all_at(
    file: &Descriptor,
    mut bytes: &[u8],
    mut offset: u64,
    context: &str,
) -> Result<(), Error> {
    while !bytes.is_empty() {
        let n = file
            .write(bytes, offset)
            .map_err(|e| fs_error(context, e))?;
        if n == 0 {
            return Err(Error::Io(format!("{context}: no progress")));
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
