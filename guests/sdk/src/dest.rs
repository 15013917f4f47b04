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
    create(dir, path, OpenFlags::TRUNCATE)
}

/// Creates `path` in `dir`, opened for writing; fails if anything is there
/// already (a symlink planted there included, which is never followed).
pub fn create_new(dir: &Descriptor, path: &str) -> Result<Descriptor, Error> {
    create(dir, path, OpenFlags::EXCLUSIVE)
}

fn create(dir: &Descriptor, path: &str, flags: OpenFlags) -> Result<Descriptor, Error> {
    dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::CREATE | flags,
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

/// Reads the small file `path` of `dir` whole (at most `limit` bytes);
/// `None` when it does not exist.
pub fn read_file(dir: &Descriptor, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    let file = match dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::empty(),
        DescriptorFlags::READ,
    ) {
        Ok(f) => f,
        Err(ErrorCode::NoEntry) => return Ok(None),
        Err(e) => return Err(fs_error(&format!("opening {path}"), e)),
    };
    let mut bytes = Vec::new();
    loop {
        let (chunk, end) = file
            .read(1 << 20, bytes.len() as u64)
            .map_err(|e| fs_error(&format!("reading {path}"), e))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(Error::Limit(format!("{path} is larger than {limit} bytes")));
        }
        if end || chunk.is_empty() {
            return Ok(Some(bytes));
        }
    }
}

/// Whether `path` exists in `dir` (a symlink is not followed).
pub fn exists(dir: &Descriptor, path: &str) -> Result<bool, Error> {
    match dir.stat_at(PathFlags::empty(), path) {
        Ok(_) => Ok(true),
        Err(ErrorCode::NoEntry) => Ok(false),
        Err(e) => Err(fs_error(&format!("checking {path}"), e)),
    }
}

/// Writes `bytes` to `path` atomically: into a new file beside it, then
/// renamed over it, so `path` is never seen half-written.
pub fn replace_file(dir: &Descriptor, path: &str, bytes: &[u8]) -> Result<(), Error> {
    let temp = format!("{path}.outport-new");
    write_file(dir, &temp, bytes)?;
    dir.rename_at(&temp, dir, path)
        .map_err(|e| fs_error(&format!("renaming {temp} to {path}"), e))
}

/// The names in the directory `path` of `dir` (none when it does not exist).
pub fn list_dir(dir: &Descriptor, path: &str) -> Result<Vec<String>, Error> {
    let sub = match dir.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ,
    ) {
        Ok(d) => d,
        Err(ErrorCode::NoEntry) => return Ok(Vec::new()),
        Err(e) => return Err(fs_error(&format!("opening {path}"), e)),
    };
    let entries = sub
        .read_directory()
        .map_err(|e| fs_error(&format!("listing {path}"), e))?;
    let mut names = Vec::new();
    while let Some(entry) = entries
        .read_directory_entry()
        .map_err(|e| fs_error(&format!("listing {path}"), e))?
    {
        names.push(entry.name);
    }
    Ok(names)
}

/// Removes the file `path` of `dir`.
pub fn remove_file(dir: &Descriptor, path: &str) -> Result<(), Error> {
    dir.unlink_file_at(path)
        .map_err(|e| fs_error(&format!("removing {path}"), e))
}

/// Copies the file `path` of `from` to a new file `path` of `to`; the bytes
/// are spliced from stream to stream by the host, never through guest
/// memory. Returns the number of bytes copied.
pub fn copy_file(from: &Descriptor, to: &Descriptor, path: &str) -> Result<u64, Error> {
    let source = from
        .open_at(
            PathFlags::empty(),
            path,
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
        .map_err(|e| fs_error(&format!("opening {path}"), e))?;
    let input = source
        .read_via_stream(0)
        .map_err(|e| fs_error(&format!("reading {path}"), e))?;
    let output = create_file(to, path)?
        .write_via_stream(0)
        .map_err(|e| fs_error(&format!("writing {path}"), e))?;
    let mut copied = 0;
    loop {
        match output.blocking_splice(&input, 1 << 20) {
            Ok(n) => copied += n,
            Err(crate::bindings::wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(stream_error(&format!("copying {path}"), e)),
        }
    }
    output
        .blocking_flush()
        .map_err(|e| stream_error(&format!("writing {path}"), e))?;
    Ok(copied)
}
