//! The directory the previous entry of a layer went in: consecutive tar
//! entries share their parent, which is then not resolved again.

use super::paths::join;

/// The parent directory of the entry applied last: as the layer wrote it,
/// and where it resolved to in the tree.
///
/// A later entry that writes the same parent goes in the same directory
/// when resolving it followed no symlink (`dir` is then the cleaned
/// parent) and the directory and its parents are directories: applying an
/// entry in `dir` changes only what lies below `dir`, so neither can have
/// changed in between. A parent reached through a symlink is resolved
/// anew each time: the entry may have replaced the link or what it goes
/// through.
#[derive(Debug, Default)]
pub struct LastDir {
    /// The parent as the layer wrote it (`usr/./lib/`), when a later entry
    /// naming the same one may go in `dir` without resolving it again.
    written: Option<String>,
    /// Where it resolved to (`usr/lib`; `""`: the root).
    pub(super) dir: String,
    /// Whether `dir` and its parents are directories in the tree (made by
    /// the first entry put in it).
    pub(super) made: bool,
}

impl LastDir {
    /// Whether `written` is the parent resolved last, and may be reused.
    pub(super) fn is(&self, written: &str) -> bool {
        self.written.as_deref() == Some(written)
    }

    /// Records that the entry's parent resolved to `dir` (components);
    /// `written` is the parent as the layer wrote it, when it may be
    /// reused.
    pub(super) fn set(&mut self, written: Option<&str>, dir: &[String]) {
        self.written = written.map(str::to_owned);
        self.dir = join(dir);
        self.made = false;
    }
}
