//! The tree's parts: a path's [`Node`] (its [`Kind`] and [`Meta`]), where
//! a file's bytes are ([`ContentId`]), and the tar [`Entry`] it comes from.

use tar::EntryType;

/// Where a regular file's bytes are: entry `ordinal` of layer `layer` of
/// platform `platform` (indexes into the export's platforms and their
/// layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentId {
    /// Index of the platform.
    pub platform: usize,
    /// Index of the layer in that platform's manifest.
    pub layer: usize,
    /// Index of the entry in the layer's tar.
    pub ordinal: u64,
    /// Where the entry's bytes start in the layer's uncompressed tar (its
    /// view, see `uncompressed-layers`): the writers have the host copy a
    /// file's bytes from there.
    pub offset: u64,
}

/// What a tar header records about an entry besides its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits, setuid/setgid/sticky included.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Owner's name, when recorded.
    pub uname: Option<String>,
    /// Group's name, when recorded.
    pub gname: Option<String>,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl Meta {
    /// A directory no layer described (a parent of an entry): root, 0755,
    /// time 0.
    pub fn implicit_dir() -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            mtime: 0,
        }
    }
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file; paths with the same content are hard links.
    File {
        /// Where its bytes are.
        content: ContentId,
        /// How many bytes.
        size: u64,
    },
    /// A symbolic link, its target as the layer wrote it.
    Symlink(String),
    /// A character or block device or a FIFO (tar entry type byte).
    Special {
        /// `b'3'` (char), `b'4'` (block) or `b'6'` (FIFO).
        entry_type: u8,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Its metadata.
    pub meta: Meta,
    /// The layer that last wrote it (whiteouts only hide lower layers).
    pub(super) layer: usize,
}

/// One tar entry, as far as the tree needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path as the layer wrote it.
    pub path: String,
    /// The tar entry type.
    pub entry_type: EntryType,
    /// The link target (symlinks, hard links).
    pub link: Option<String>,
    /// Size of its data.
    pub size: u64,
    /// Metadata.
    pub meta: Meta,
    /// Device numbers (char and block devices).
    pub device: (u32, u32),
}
