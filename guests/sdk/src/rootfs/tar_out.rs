//! Writing root filesystem trees as one tar archive, into a file at
//! increasing offsets: for each tree, its directories (path order), its
//! regular files (layer order), then symlinks, devices and hard links (path
//! order); the provenance statements last. The same image and options
//! always give the same bytes. Headers are built by the `tar` crate; the
//! bytes of every file are copied by the host straight out of its layer's
//! uncompressed view, once a tree's headers are written, all in one call
//! ([`copy_all`]: the host copies several layers at once).

use std::io::{self, BufWriter, Write};

use tar::{Builder, EntryType, Header};

use super::copies::{Pending, copy_all};
use super::tree::{Kind, Meta, Tree};
use super::{FileBytes, Plan, stream_contents};
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::log;

/// How many bytes are gathered before one write to the file.
const BUFFER: usize = 1 << 20;

/// A file written at increasing offsets, as [`Write`].
struct FileWrite {
    file: Descriptor,
    /// Where the next byte goes.
    pos: u64,
}

impl Write for FileWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self
            .file
            .write(buf, self.pos)
            .map_err(|e| io::Error::other(e.name()))?;
        let n = usize::try_from(n).unwrap_or(buf.len()).min(buf.len());
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `plan` as a tar into `file` (opened for writing, from offset 0);
/// `name` names the archive in messages. Returns the number of entries.
pub fn write(plan: &Plan, file: Descriptor, name: &str) -> Result<u64, Error> {
    let fail = |what: &str, e: io::Error| Error::Io(format!("writing {what} to {name}: {e}"));
    let mut builder = Builder::new(BufWriter::with_capacity(BUFFER, FileWrite { file, pos: 0 }));
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
        .and_then(|mut buffered| buffered.flush())
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

type Out = Builder<BufWriter<FileWrite>>;

fn write_tree<'a>(
    builder: &mut Out,
    plan: &'a Plan,
    tree: &'a Tree,
    prefix: &str,
) -> Result<u64, Failure> {
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
    // Each layer's files, in tar order: their headers now, their bytes
    // once every header of the tree is written.
    let mut layers: Vec<((usize, usize), Vec<Pending<'a>>)> = Vec::new();
    let streamed = stream_contents(plan, &ids, &mut |id, bytes: FileBytes<'a>| {
        let path = contents[&id][0];
        let node = &tree.nodes[path];
        let Kind::File { size, .. } = node.kind else {
            return Ok(());
        };
        let full = format!("{prefix}{path}");
        let mut header = header(EntryType::Regular, &node.meta, size);
        match append_deferred(builder, &mut header, &full, size) {
            Ok(at) => {
                let layer = (id.platform, id.layer);
                if layers.last().is_none_or(|(l, _)| *l != layer) {
                    layers.push((layer, Vec::new()));
                }
                if let Some((_, files)) = layers.last_mut() {
                    files.push(Pending {
                        bytes,
                        len: size,
                        at,
                    });
                }
                count += 1;
                Ok(())
            }
            Err(Failure::Io(what, e)) => {
                let message = format!("{what}: {e}");
                failure = Some(Failure::Io(what, e));
                Err(Error::Io(message))
            }
            Err(Failure::Guest(e)) => Err(e),
        }
    });
    streamed.map_err(|e| failure.take().unwrap_or(Failure::Guest(e)))?;
    let layers: Vec<Vec<Pending<'a>>> = layers.into_iter().map(|(_, files)| files).collect();
    let what = if prefix.is_empty() {
        "the files"
    } else {
        prefix
    };
    copy_all(&builder.get_ref().get_ref().file, &layers, what).map_err(Failure::Guest)?;
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

/// Appends a regular file of `size` bytes whose bytes the host copies in
/// later: the header (and any long-name entry) through the builder, then
/// room for the bytes (left unwritten) and the padding to 512 bytes.
/// Returns where the bytes go.
fn append_deferred(
    builder: &mut Out,
    header: &mut Header,
    path: &str,
    size: u64,
) -> Result<u64, Failure> {
    let failed = |e| Failure::Io(path.to_owned(), e);
    // The header says `size` bytes; with none given, the builder writes
    // neither bytes nor padding.
    builder
        .append_data(header, path, io::empty())
        .map_err(failed)?;
    let out = builder.get_mut();
    out.flush().map_err(failed)?;
    let file = out.get_mut();
    let at = file.pos;
    file.pos += size;
    let padding = (512 - size % 512) % 512;
    out.write_all(&[0; 512][..padding as usize])
        .map_err(failed)?;
    Ok(at)
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
