//! Reading one layer's tar into the tree: each entry's path, kind and
//! metadata, and where the layer's uncompressed tar holds a file's bytes.

use std::io::{self, Read};

use tar::EntryType;

use super::node::{ContentId, Entry, Meta};
use super::{LastDir, Tree};
use crate::rootfs::reader::BlobReader;

impl Tree {
    /// Applies one layer on top of the tree, read from its uncompressed
    /// tar (`reader`); `platform` and `layer` index it in the export. File
    /// bytes are skipped, not read, and the tree records where they are in
    /// the tar. `warn` is told about every entry left out and why.
    pub fn apply_layer(
        &mut self,
        mut reader: BlobReader,
        platform: usize,
        layer: usize,
        warn: &mut dyn FnMut(String),
    ) -> io::Result<()> {
        let mut archive = tar::Archive::new(&mut reader);
        self.apply_entries(archive.entries_with_seek()?, platform, layer, warn)?;
        // The end-of-archive marker may come before the blob's end: read
        // the rest, so that a view of an uncompressed layer (the layer
        // itself) has its digest checked now.
        reader.skip_to_end()
    }

    /// Applies the entries of one layer's tar; an entry's position in the
    /// tar is where its bytes are.
    fn apply_entries<R: Read>(
        &mut self,
        entries: tar::Entries<'_, R>,
        platform: usize,
        layer: usize,
        warn: &mut dyn FnMut(String),
    ) -> io::Result<()> {
        let mut last = LastDir::default();
        for (ordinal, entry) in entries.enumerate() {
            let entry = entry?;
            let header = entry.header();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let meta = Meta {
                mode: header.mode().unwrap_or(0o644),
                uid: header.uid().unwrap_or(0),
                gid: header.gid().unwrap_or(0),
                uname: header.username().ok().flatten().map(str::to_owned),
                gname: header.groupname().ok().flatten().map(str::to_owned),
                mtime: header.mtime().unwrap_or(0),
            };
            // Other entries leave the device fields empty, which `tar`
            // reports as an error (formatted, with the path).
            let device = match header.entry_type() {
                EntryType::Char | EntryType::Block | EntryType::Fifo => (
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                ),
                _ => (0, 0),
            };
            let parsed = Entry {
                path,
                entry_type: header.entry_type(),
                link,
                size: entry.size(),
                meta,
                device,
            };
            let offset = entry.raw_file_position();
            let id = ContentId {
                platform,
                layer,
                ordinal: ordinal as u64,
                offset,
            };
            self.apply(parsed, id, &mut last, warn);
        }
        Ok(())
    }
}
