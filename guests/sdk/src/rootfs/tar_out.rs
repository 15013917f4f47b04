//! Writing root filesystem trees as one tar stream: for each tree, its
//! directories (path order), its regular files (layer order, each file's
//! bytes streamed from its layer), then symlinks, devices and hard links
//! (path order); the provenance statements last. The same image and options
//! always give the same bytes.

use std::io::{self, BufWriter, Read, Write};

use tar::{Builder, EntryType, Header};

use super::tree::{Kind, Meta, Tree};
use super::{Plan, stream_contents};
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};
use crate::log;

/// How many bytes are gathered before one write to the output stream.
const BUFFER: usize = 1 << 20;

/// An output-stream as [`Write`].
pub struct StreamWrite {
    stream: OutputStream,
}

impl StreamWrite {
    /// Wraps `stream`.
    pub fn new(stream: OutputStream) -> Self {
        StreamWrite { stream }
    }
}

fn io_error(e: StreamError) -> io::Error {
    match e {
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"),
    }
}

impl Write for StreamWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let room = self.stream.check_write().map_err(io_error)?;
            if room == 0 {
                self.stream.subscribe().block();
                continue;
            }
            let n = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
            self.stream.write(&buf[..n]).map_err(io_error)?;
            return Ok(n);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(io_error)
    }
}

/// Writes `plan` as a tar to `stream`; `name` names the archive in
/// messages. Returns the number of entries.
pub fn write(plan: &Plan, stream: OutputStream, name: &str) -> Result<u64, Error> {
    let fail = |what: &str, e: io::Error| Error::Io(format!("writing {what} to {name}: {e}"));
    let mut builder = Builder::new(BufWriter::with_capacity(BUFFER, StreamWrite::new(stream)));
    let mut count = 0u64;
    for (dir, tree) in &plan.trees {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            let mut header = header(EntryType::Directory, &Meta::implicit_dir(), 0);
            builder
                .append_data(&mut header, format!("{dir}/"), io::empty())
                .map_err(|e| fail(dir, e))?;
            count += 1;
            format!("{dir}/")
        };
        count += write_tree(&mut builder, plan, tree, &prefix).map_err(|e| match e {
            Failure::Io(what, e) => fail(&what, e),
            Failure::Guest(e) => e,
        })?;
    }
    for (path, bytes) in &plan.extra {
        let meta = Meta {
            mode: 0o644,
            ..Meta::implicit_dir()
        };
        let mut header = header(EntryType::Regular, &meta, bytes.len() as u64);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(|e| fail(path, e))?;
        count += 1;
    }
    builder
        .into_inner()
        .and_then(|buffered| {
            buffered
                .into_inner()
                .map_err(io::IntoInnerError::into_error)
        })
        .and_then(|mut stream| stream.flush())
        .map_err(|e| fail("the end of the archive", e))?;
    Ok(count)
}

/// Why writing a tree stopped.
enum Failure {
    /// Writing the entry (named) failed.
    Io(String, io::Error),
    /// Reading a layer failed.
    Guest(Error),
}

type Out = Builder<BufWriter<StreamWrite>>;

fn write_tree(builder: &mut Out, plan: &Plan, tree: &Tree, prefix: &str) -> Result<u64, Failure> {
    let mut count = 0u64;
    for (path, node) in &tree.nodes {
        if node.kind == Kind::Dir {
            let mut header = header(EntryType::Directory, &node.meta, 0);
            builder
                .append_data(&mut header, format!("{prefix}{path}/"), io::empty())
                .map_err(|e| Failure::Io(path.clone(), e))?;
            count += 1;
        }
    }
    let contents = tree.contents();
    let ids: Vec<_> = contents.keys().copied().collect();
    let mut failure = None;
    let streamed = stream_contents(&plan.sources, &ids, &mut |id, reader: &mut dyn Read| {
        let path = contents[&id][0];
        let node = &tree.nodes[path];
        let Kind::File { size, .. } = node.kind else {
            return Ok(());
        };
        let mut header = header(EntryType::Regular, &node.meta, size);
        if let Err(e) = builder.append_data(&mut header, format!("{prefix}{path}"), reader) {
            let message = format!("{prefix}{path}: {e}");
            failure = Some(Failure::Io(format!("{prefix}{path}"), e));
            return Err(Error::Io(message));
        }
        count += 1;
        Ok(())
    });
    streamed.map_err(|e| failure.take().unwrap_or(Failure::Guest(e)))?;
    for (path, node) in &tree.nodes {
        let full = format!("{prefix}{path}");
        let written = match &node.kind {
            Kind::Dir => continue,
            Kind::File { content, .. } => {
                let primary = contents[content][0];
                if primary == path {
                    continue;
                }
                let mut header = header(EntryType::Link, &node.meta, 0);
                builder.append_link(&mut header, &full, format!("{prefix}{primary}"))
            }
            Kind::Symlink(target) => {
                let mut header = header(EntryType::Symlink, &node.meta, 0);
                builder.append_link(&mut header, &full, target)
            }
            Kind::Special {
                entry_type,
                major,
                minor,
            } => {
                let mut header = header(EntryType::new(*entry_type), &node.meta, 0);
                let devices = header
                    .set_device_major(*major)
                    .and_then(|()| header.set_device_minor(*minor));
                devices.and_then(|()| builder.append_data(&mut header, &full, io::empty()))
            }
        };
        written.map_err(|e| Failure::Io(full, e))?;
        count += 1;
    }
    log::debug(&format!("{prefix}: {count} entries"));
    Ok(count)
}

/// A GNU header (large sizes and ids, long names) with `meta`; the path
/// and checksum are set when it is appended.
fn header(kind: EntryType, meta: &Meta, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_mtime(meta.mtime);
    header.set_size(size);
    if let Some(user) = &meta.uname {
        let _ = header.set_username(user);
    }
    if let Some(group) = &meta.gname {
        let _ = header.set_groupname(group);
    }
    header
}
