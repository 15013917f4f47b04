//! The root filesystem as a tree of metadata (no file contents): layers
//! applied in order, whiteouts and opaque directories honoured, hard links
//! turned into shared contents, paths resolved inside the root.
//!
//! A regular file's bytes are named by a [`ContentId`] (which layer, which
//! entry of it): the writers read them again from that layer, so the tree
//! stays small whatever the layers hold.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};

use tar::EntryType;

use super::reader::Layer;

/// The whiteout prefix (`.wh.NAME` deletes `NAME` of the layers below).
const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker: the directory hides what the layers below
/// put in it.
const OPAQUE: &str = ".wh..wh..opq";
/// How many symlinks one path may go through.
const MAX_HOPS: usize = 40;

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
    /// Where the bytes start in the layer's blob, when the layer is an
    /// uncompressed tar (the writers then have the host copy them).
    pub offset: Option<u64>,
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
    layer: usize,
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

/// A root filesystem: relative path (`etc/os-release`, no leading or
/// trailing slash) → node, in path order (a directory before its contents).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// Every path but the root.
    pub nodes: BTreeMap<String, Node>,
}

/// The path's components, `.` and empty ones dropped and `..` applied; a
/// leading `/` means the root of the tree. `None` when `..` climbs above
/// the root.
pub fn clean(path: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            other => out.push(other.to_owned()),
        }
    }
    Some(out)
}

/// A symlink target made safe for a directory tree on the host: unchanged
/// when it is relative and stays inside the tree, otherwise (absolute, or
/// climbing above the root) rewritten as the relative path it means inside
/// the root (`/etc/x` at `a/b/link` → `../../etc/x`; `..` stops at the
/// root, as in a chroot). Returns the target and whether it was rewritten.
pub fn contained_target(link_path: &str, target: &str) -> (String, bool) {
    let depth = link_path.split('/').count().saturating_sub(1);
    if !target.starts_with('/') {
        let mut level = depth as i64;
        let mut escapes = false;
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    level -= 1;
                    if level < 0 {
                        escapes = true;
                        break;
                    }
                }
                _ => level += 1,
            }
        }
        if !escapes && !target.is_empty() {
            return (target.to_owned(), false);
        }
    }
    // Where the target points, from the root, `..` clamped at the root.
    let mut from_root: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link_path.split('/').take(depth).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                from_root.pop();
            }
            other => from_root.push(other),
        }
    }
    let mut parts: Vec<&str> = vec![".."; depth];
    parts.extend(from_root);
    if parts.is_empty() {
        return (".".to_owned(), true);
    }
    (parts.join("/"), true)
}

/// `a/b` of `["a", "b"]`.
fn join(parts: &[String]) -> String {
    parts.join("/")
}

impl Tree {
    /// Applies one layer on top of the tree; `platform` and `layer` index it
    /// in the export. An uncompressed layer's file bytes are skipped, not
    /// read (the host reads them to check the digest), and the tree records
    /// where they are. `warn` is told about every entry left out and why.
    pub fn apply_layer(
        &mut self,
        source: Layer,
        platform: usize,
        layer: usize,
        warn: &mut dyn FnMut(String),
    ) -> io::Result<()> {
        match source {
            Layer::Plain(mut reader) => {
                let mut archive = tar::Archive::new(&mut reader);
                self.apply_entries(archive.entries_with_seek()?, true, platform, layer, warn)?;
                // The end-of-archive marker may come before the blob's end:
                // read the rest, so its digest is checked now.
                reader.skip_to_end()
            }
            Layer::Packed(reader) => {
                let mut archive = tar::Archive::new(reader);
                self.apply_entries(archive.entries()?, false, platform, layer, warn)
            }
        }
    }

    /// Applies the entries of one layer's tar; `plain`: the tar is the blob
    /// itself, so an entry's position in it is where its bytes are.
    fn apply_entries<R: Read>(
        &mut self,
        entries: tar::Entries<'_, R>,
        plain: bool,
        platform: usize,
        layer: usize,
        warn: &mut dyn FnMut(String),
    ) -> io::Result<()> {
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
            let device = (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            );
            let parsed = Entry {
                path,
                entry_type: header.entry_type(),
                link,
                size: entry.size(),
                meta,
                device,
            };
            let offset = match parsed.entry_type {
                EntryType::Regular | EntryType::Continuous if plain => {
                    Some(entry.raw_file_position())
                }
                _ => None,
            };
            let id = ContentId {
                platform,
                layer,
                ordinal: ordinal as u64,
                offset,
            };
            self.apply(parsed, id, warn);
        }
        Ok(())
    }

    /// Applies one entry of layer `id.layer`.
    pub fn apply(&mut self, entry: Entry, id: ContentId, warn: &mut dyn FnMut(String)) {
        let layer = id.layer;
        let Some(mut comps) = clean(&entry.path) else {
            warn(format!("{}: climbs above the root; left out", entry.path));
            return;
        };
        let Some(name) = comps.pop() else {
            return; // the root itself
        };
        let parent = match self.resolve(&comps) {
            Ok(parent) => parent,
            Err(why) => {
                warn(format!("{}: {why}; left out", entry.path));
                return;
            }
        };
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            self.ensure_dirs(&parent, layer);
            let dir = join(&parent);
            if name == OPAQUE {
                self.remove_below(&dir, layer);
            } else if !hidden.starts_with(WHITEOUT) {
                let mut path = parent.clone();
                path.push(hidden.to_owned());
                let path = join(&path);
                if self.nodes.get(&path).is_some_and(|n| n.layer < layer) {
                    self.remove_subtree(&path);
                }
            }
            return;
        }
        let kind = match entry.entry_type {
            EntryType::Directory => Kind::Dir,
            EntryType::Regular | EntryType::Continuous => Kind::File {
                content: id,
                size: entry.size,
            },
            EntryType::Symlink => Kind::Symlink(entry.link.clone().unwrap_or_default()),
            EntryType::Link => {
                let target = entry.link.as_deref().unwrap_or_default();
                match self.hard_link_target(target) {
                    Ok((kind, meta)) => {
                        self.insert(parent, name, kind, meta, layer);
                        return;
                    }
                    Err(why) => {
                        warn(format!(
                            "{}: hard link to {target}: {why}; left out",
                            entry.path
                        ));
                        return;
                    }
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => Kind::Special {
                entry_type: entry.entry_type.as_byte(),
                major: entry.device.0,
                minor: entry.device.1,
            },
            EntryType::XGlobalHeader | EntryType::XHeader => return,
            other => {
                warn(format!(
                    "{}: tar entry type {:?} is not supported; left out",
                    entry.path,
                    other.as_byte() as char
                ));
                return;
            }
        };
        self.insert(parent, name, kind, entry.meta, layer);
    }

    /// The file a hard link entry names: its kind (sharing its content)
    /// and metadata.
    fn hard_link_target(&self, target: &str) -> Result<(Kind, Meta), String> {
        let mut comps = clean(target).ok_or("it climbs above the root")?;
        let name = comps.pop().ok_or("it names the root")?;
        let mut path = self.resolve(&comps)?;
        path.push(name);
        match self.nodes.get(&join(&path)) {
            Some(
                node @ Node {
                    kind: Kind::File { .. },
                    ..
                },
            ) => Ok((node.kind.clone(), node.meta.clone())),
            Some(_) => Err("not a regular file".to_owned()),
            None => Err("no such file".to_owned()),
        }
    }

    /// Puts `kind` at `parent/name`, replacing what is there (a directory
    /// over a directory keeps its contents).
    fn insert(&mut self, parent: Vec<String>, name: String, kind: Kind, meta: Meta, layer: usize) {
        self.ensure_dirs(&parent, layer);
        let mut path = parent;
        path.push(name);
        let path = join(&path);
        let both_dirs = kind == Kind::Dir
            && self
                .nodes
                .get(&path)
                .is_some_and(|n| matches!(n.kind, Kind::Dir));
        if !both_dirs {
            self.remove_subtree(&path);
        }
        self.nodes.insert(path, Node { kind, meta, layer });
    }

    /// Creates the missing directories of `parent` (resolved components).
    fn ensure_dirs(&mut self, parent: &[String], layer: usize) {
        for i in 1..=parent.len() {
            self.nodes
                .entry(join(&parent[..i]))
                .or_insert_with(|| Node {
                    kind: Kind::Dir,
                    meta: Meta::implicit_dir(),
                    layer,
                });
        }
    }

    /// Removes `path` and everything under it.
    pub fn remove_subtree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.remove_below(path, usize::MAX);
    }

    /// Removes what lies under directory `dir` (`""`: the root) and came
    /// from a layer below `layer`.
    fn remove_below(&mut self, dir: &str, layer: usize) {
        let doomed: Vec<String> = if dir.is_empty() {
            self.nodes
                .iter()
                .filter(|(_, n)| n.layer < layer)
                .map(|(p, _)| p.clone())
                .collect()
        } else {
            let start = format!("{dir}/");
            let end = format!("{dir}0"); // '0' follows '/'
            self.nodes
                .range(start..end)
                .filter(|(_, n)| n.layer < layer)
                .map(|(p, _)| p.clone())
                .collect()
        };
        for path in doomed {
            self.nodes.remove(&path);
        }
    }

    /// Resolves directory components inside the root: symlinks followed
    /// (an absolute target starts again at the root, `..` stops at the
    /// root), a missing directory taken as one to create. Fails when a
    /// component is not a directory or links loop.
    pub fn resolve(&self, comps: &[String]) -> Result<Vec<String>, String> {
        let mut pending: VecDeque<String> = comps.iter().cloned().collect();
        let mut out: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(part);
            match self.nodes.get(&join(&out)).map(|n| &n.kind) {
                None | Some(Kind::Dir) => {}
                Some(Kind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err("too many levels of symbolic links".to_owned());
                    }
                    out.pop();
                    if target.starts_with('/') {
                        out.clear();
                    }
                    for part in target.split('/').rev() {
                        pending.push_front(part.to_owned());
                    }
                }
                Some(_) => return Err(format!("{} is not a directory", join(&out))),
            }
        }
        Ok(out)
    }

    /// Lays `upper` over this tree, as BuildKit merges platforms
    /// (`platform-split=false`): each path of `upper` replaces the same
    /// path here (directories over directories keep their contents).
    pub fn overlay(&mut self, upper: Tree) {
        for (path, node) in upper.nodes {
            let both_dirs = matches!(node.kind, Kind::Dir)
                && self
                    .nodes
                    .get(&path)
                    .is_some_and(|n| matches!(n.kind, Kind::Dir));
            if !both_dirs {
                self.remove_subtree(&path);
            }
            self.nodes.insert(path, node);
        }
    }

    /// The paths of every content, in path order: the first is where the
    /// bytes go, the others are hard links to it.
    pub fn contents(&self) -> BTreeMap<ContentId, Vec<&str>> {
        let mut out: BTreeMap<ContentId, Vec<&str>> = BTreeMap::new();
        for (path, node) in &self.nodes {
            if let Kind::File { content, .. } = node.kind {
                out.entry(content).or_default().push(path);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            mtime: 1,
        }
    }

    fn entry(path: &str, entry_type: EntryType, link: Option<&str>) -> Entry {
        Entry {
            path: path.to_owned(),
            entry_type,
            link: link.map(str::to_owned),
            size: 3,
            meta: meta(),
            device: (0, 0),
        }
    }

    /// Applies `(layer, path, type, link)` entries; returns the tree and
    /// the warnings.
    fn build(entries: &[(usize, &str, EntryType, Option<&str>)]) -> (Tree, Vec<String>) {
        let mut tree = Tree::default();
        let mut warnings = Vec::new();
        for (ordinal, (layer, path, kind, link)) in entries.iter().enumerate() {
            let id = ContentId {
                platform: 0,
                layer: *layer,
                ordinal: ordinal as u64,
                offset: None,
            };
            tree.apply(entry(path, *kind, *link), id, &mut |w| warnings.push(w));
        }
        (tree, warnings)
    }

    fn paths(tree: &Tree) -> Vec<&str> {
        tree.nodes.keys().map(String::as_str).collect()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        use EntryType::*;
        let (tree, warnings) = build(&[
            (0, "a/", Directory, None),
            (0, "a/x", Regular, None),
            (0, "a/y", Regular, None),
            (0, "b/", Directory, None),
            (0, "b/old", Regular, None),
            (1, "a/z", Regular, None),
            (1, "a/.wh.x", Regular, None),
            (1, "b/new", Regular, None),
            (1, "b/.wh..wh..opq", Regular, None),
            (1, "a/.wh.z", Regular, None),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(paths(&tree), ["a", "a/y", "a/z", "b", "b/new"]);
    }

    #[test]
    fn hard_links_share_content_and_survive_their_target() {
        use EntryType::*;
        let (tree, _) = build(&[
            (0, "f", Regular, None),
            (0, "g", Link, Some("f")),
            (1, ".wh.f", Regular, None),
        ]);
        assert_eq!(paths(&tree), ["g"]);
        let contents = tree.contents();
        assert_eq!(contents.values().next().unwrap(), &["g"]);
        let (tree, w) = build(&[(0, "f", Regular, None), (0, "g", Link, Some("/f"))]);
        assert!(w.is_empty());
        assert_eq!(tree.contents().values().next().unwrap(), &["f", "g"]);
    }

    #[test]
    fn hostile_paths_are_left_out_or_kept_inside() {
        use EntryType::*;
        let (tree, warnings) = build(&[
            (0, "../escape", Regular, None),
            (0, "a/../../escape", Regular, None),
            (0, "/abs", Regular, None),
            (0, "evil", Symlink, Some("/")),
            (0, "up", Symlink, Some("../../..")),
            (0, "evil/through", Regular, None),
            (0, "up/through2", Regular, None),
            (0, "hl", Link, Some("../../etc/passwd")),
            (0, "hl2", Link, Some("/etc/passwd")),
            (0, "loop", Symlink, Some("loop")),
            (0, "loop/x", Regular, None),
        ]);
        assert_eq!(
            paths(&tree),
            ["abs", "evil", "loop", "through", "through2", "up"]
        );
        assert_eq!(warnings.len(), 5, "{warnings:?}");
    }

    #[test]
    fn file_over_directory_replaces_it() {
        use EntryType::*;
        let (tree, _) = build(&[
            (0, "d/", Directory, None),
            (0, "d/x", Regular, None),
            (1, "d", Regular, None),
        ]);
        assert_eq!(paths(&tree), ["d"]);
    }

    #[test]
    fn overlay_later_wins() {
        use EntryType::*;
        let (mut lower, _) = build(&[(0, "a", Regular, None), (0, "only-lower", Regular, None)]);
        let (upper, _) = build(&[(0, "a/", Directory, None), (0, "a/b", Regular, None)]);
        lower.overlay(upper);
        assert_eq!(paths(&lower), ["a", "a/b", "only-lower"]);
    }

    #[test]
    fn contained_targets() {
        assert_eq!(contained_target("a/b", "c"), ("c".to_owned(), false));
        assert_eq!(contained_target("a/b", "../c"), ("../c".to_owned(), false));
        assert_eq!(
            contained_target("a/b", "../../c"),
            ("../c".to_owned(), true)
        );
        assert_eq!(
            contained_target("a/b/l", "/etc/x"),
            ("../../etc/x".to_owned(), true)
        );
        assert_eq!(contained_target("l", "/"), (".".to_owned(), true));
        assert_eq!(contained_target("l", "../../x"), ("x".to_owned(), true));
    }
}
