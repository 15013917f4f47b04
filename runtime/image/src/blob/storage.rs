//! Where a blob's bytes are: a byte range of an open file, or memory.

use std::fs::File;
use std::sync::Arc;

/// A byte range of an open file.
#[derive(Debug, Clone)]
pub(crate) struct FileRegion {
    /// The file (a layout blob file or a tar archive).
    pub(crate) file: Arc<File>,
    /// Where the bytes start.
    pub(crate) offset: u64,
    /// How many bytes the region holds (the file's or the tar entry's size).
    pub(crate) len: u64,
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub(super) enum Data {
    Memory(Arc<[u8]>),
    File(FileRegion),
    /// Not here yet: fetched on first read.
    Deferred(Arc<super::fetch::Deferred>),
}
