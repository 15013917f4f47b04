//! Unpacking root filesystem trees into the granted directory, through
//! `wasi:filesystem` calls on the preopened directory only.
//!
//! Safe against hostile layers by construction:
//!
//! - every path written comes from the [`Tree`], where `..` cannot climb
//!   above the root and every parent is a directory the tree resolved
//!   (symlinks followed inside the root): nothing is ever written through a
//!   symlink, and no call asks to follow one (`path-flags` without
//!   `symlink-follow`); files are created new, so an existing path (a
//!   symlink planted there) is never opened: the host creates a layer's
//!   files a batch at a time (`blob.write-files`) beneath the directory,
//!   following no symlink, with their bytes, modes and times;
//! - a symlink whose target is absolute or climbs above the root is written
//!   as the relative path it means inside the root, so no symlink of the
//!   output points outside it;
//! - a hard link can only name a regular file of the tree;
//! - devices and FIFOs are left out, with a warning;
//! - modes are set by the host (`blob.write-files` for files, `files.set-mode`
//!   for directories and hard-linked files, on a descriptor opened without
//!   following symlinks), which `wasi:filesystem` cannot; the host drops
//!   setuid/setgid bits; owners are not set (the
//!   runtime does not run guests with the right to chown); modification
//!   times are set.
//!
//! The host resolves every path inside the preopened directory as well.

use std::collections::BTreeMap;

use super::tree::{ContentId, Kind, Tree, contained_target};
use super::{Plan, by_layer};
use crate::bindings::outport::exporter::files;
use crate::bindings::outport::exporter::image::NewFile;
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::clocks::wall_clock::Datetime;
use crate::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, NewTimestamp, OpenFlags, PathFlags,
};
use crate::dest;
use crate::errors::fs_error;
use crate::log;

/// The paths of each content of a tree, the first where its bytes go.
type Contents<'a> = BTreeMap<ContentId, Vec<&'a str>>;

/// Sets the permission bits of `path` (a file or directory just written),
/// opened without following symlinks; the host drops setuid/setgid bits.
fn set_mode(dir: &Descriptor, path: &str, kind: &Kind, mode: u32) -> Result<(), Error> {
    let open = match kind {
        Kind::Dir => OpenFlags::DIRECTORY,
        _ => OpenFlags::empty(),
    };
    let target = dir
        .open_at(PathFlags::empty(), path, open, DescriptorFlags::READ)
        .map_err(|e| fs_error(&format!("opening {path} to set its mode"), e))?;
    files::set_mode(&target, mode & 0o7777)
}

/// Unpacks `plan` into `dir`. Returns the number of paths written.
pub fn write(plan: &Plan, dir: &Descriptor) -> Result<u64, Error> {
    let mut count = 0;
    for (sub, tree) in &plan.trees {
        let prefix = if sub.is_empty() {
            String::new()
        } else {
            dest::create_dir(dir, sub)?;
            format!("{sub}/")
        };
        count += write_tree(plan, tree, dir, &prefix)?;
    }
    for (path, bytes) in &plan.extra {
        dest::write_file(dir, path, bytes)?;
    }
    Ok(count)
}

/// Unpacks one tree into `dir` under `prefix` (`""` or `linux_amd64/`):
/// directories first, then file contents, then hard links, symlinks and
/// what is left out, then modes and times. Returns the number of paths
/// written.
fn write_tree(plan: &Plan, tree: &Tree, dir: &Descriptor, prefix: &str) -> Result<u64, Error> {
    let contents = tree.contents();
    let mut count = create_dirs(tree, dir, prefix)?;
    count += write_contents(plan, tree, &contents, dir, prefix)?;
    let (links, skipped) = write_links(tree, &contents, dir, prefix)?;
    count += links;
    set_modes_and_times(tree, &contents, dir, prefix)?;
    if skipped > 0 {
        log::info(&format!(
            "{prefix}: {skipped} device or FIFO entries left out"
        ));
    }
    Ok(count)
}

/// Creates the directories of `tree`; returns how many.
fn create_dirs(tree: &Tree, dir: &Descriptor, prefix: &str) -> Result<u64, Error> {
    let mut count = 0u64;
    for (path, node) in &tree.nodes {
        if node.kind == Kind::Dir {
            dest::create_dir(dir, &format!("{prefix}{path}"))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Files one `blob.write-files` call creates at most.
const BATCH: usize = 2048;

/// Writes each content of `tree` once, at its first path (`contents`), with
/// its mode and time: the host creates a layer's files a batch at a time
/// (`blob.write-files`), copying their bytes out of the layer's view.
/// Returns how many files. Hard-linked ones get their mode and time again
/// in the last pass, path by path, as directories do.
fn write_contents(
    plan: &Plan,
    tree: &Tree,
    contents: &Contents<'_>,
    dir: &Descriptor,
    prefix: &str,
) -> Result<u64, Error> {
    let mut count = 0u64;
    let ids: Vec<_> = contents.keys().copied().collect();
    let layers = by_layer(plan, &ids);
    let mut progress = log::Progress::start("writing files", layers.len() as u64);
    for (blob, ids) in layers {
        for batch in ids.chunks(BATCH) {
            let files: Vec<NewFile> = batch
                .iter()
                .map(|id| new_file(tree, contents[id][0], prefix, id.offset))
                .collect();
            count += blob.write_files(dir, &files)?;
        }
        progress.step();
    }
    Ok(count)
}

/// What the host needs to create the file at `path` of `tree` (under
/// `prefix`), whose bytes start at `start` of its layer's view.
fn new_file(tree: &Tree, path: &str, prefix: &str, start: u64) -> NewFile {
    let node = tree.nodes.get(path);
    let len = match node.map(|n| &n.kind) {
        Some(Kind::File { size, .. }) => *size,
        _ => 0,
    };
    NewFile {
        path: format!("{prefix}{path}"),
        start,
        len,
        mode: node.map_or(0o644, |n| n.meta.mode & 0o7777),
        mtime: node.map(|n| n.meta.mtime),
    }
}

/// Creates the other paths of `tree`: hard links to the files written,
/// symlinks kept inside the tree; devices and FIFOs are left out. Returns
/// how many paths were written and how many left out.
fn write_links(
    tree: &Tree,
    contents: &Contents<'_>,
    dir: &Descriptor,
    prefix: &str,
) -> Result<(u64, u64), Error> {
    let mut count = 0u64;
    let mut skipped = 0u64;
    for (path, node) in &tree.nodes {
        let full = format!("{prefix}{path}");
        match &node.kind {
            Kind::Dir => continue,
            Kind::File { content, .. } => {
                let primary = contents[content][0];
                if primary != path {
                    dir.link_at(
                        PathFlags::empty(),
                        &format!("{prefix}{primary}"),
                        dir,
                        &full,
                    )
                    .map_err(|e| fs_error(&format!("linking {full} to {prefix}{primary}"), e))?;
                }
            }
            Kind::Symlink(target) => {
                let (target, rewritten) = contained_target(path, target);
                if rewritten {
                    log::debug(&format!(
                        "{full}: symlink target rewritten to {target} to stay inside the tree"
                    ));
                }
                dir.symlink_at(&target, &full)
                    .map_err(|e| fs_error(&format!("creating symlink {full} -> {target}"), e))?;
            }
            Kind::Special { entry_type, .. } => {
                let what = match entry_type {
                    b'3' => "character device",
                    b'4' => "block device",
                    _ => "FIFO",
                };
                log::warn(&format!("{full}: {what} left out (not unpacked by local)"));
                skipped += 1;
                continue;
            }
        }
        count += 1;
    }
    Ok((count, skipped))
}

/// Sets modes and times last, children before their directory: writing
/// into a directory changes its time, and a read-only directory could not
/// take its children.
fn set_modes_and_times(
    tree: &Tree,
    contents: &Contents<'_>,
    dir: &Descriptor,
    prefix: &str,
) -> Result<(), Error> {
    for (path, node) in tree.nodes.iter().rev() {
        match &node.kind {
            Kind::Special { .. } => continue,
            // Done as it was written (see `write_contents`).
            Kind::File { content, .. } if contents[content].len() == 1 => continue,
            _ => {}
        }
        let full = format!("{prefix}{path}");
        if matches!(node.kind, Kind::Dir | Kind::File { .. }) {
            set_mode(dir, &full, &node.kind, node.meta.mode)?;
        }
        let mtime = mtime(node.meta.mtime);
        if let Err(e) = dir.set_times_at(PathFlags::empty(), &full, NewTimestamp::NoChange, mtime) {
            log::debug(&format!("{full}: cannot set its time: {}", e.name()));
        }
    }
    Ok(())
}

/// A modification time of `seconds` since 1970.
fn mtime(seconds: u64) -> NewTimestamp {
    NewTimestamp::Timestamp(Datetime {
        seconds,
        nanoseconds: 0,
    })
}
