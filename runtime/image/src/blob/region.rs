//! A byte range of an open file: where a blob stored in a file is.

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
