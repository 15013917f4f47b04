//! The root filesystem as a tree of metadata (no file contents): layers
//! applied in order, whiteouts and opaque directories honoured, hard links
//! turned into shared contents, paths resolved inside the root.
//!
//! A regular file's bytes are named by a [`ContentId`] (which layer, which
//! entry of it): the writers read them again from that layer, so the tree
//! stays small whatever the layers hold.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque, btree_map};
use std::ops::Bound;

use tar::EntryType;

mod last_dir;
mod layer;
mod node;
mod paths;
#[cfg(test)]
mod tests;

pub use last_dir::LastDir;
pub use node::{ContentId, Entry, Kind, Meta, Node};
use paths::{child, join, split};
pub use paths::{clean, contained_target};

/// The whiteout prefix (`.wh.NAME` deletes `NAME` of the layers below).
const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker: the directory hides what the layers below
/// put in it.
const OPAQUE: &str = ".wh..wh..opq";
/// How many symlinks one path may go through.
const MAX_HOPS: usize = 40;

/// Why an entry of a layer is left out of the tree (with a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    /// Its path goes through more than `MAX_HOPS` symlinks.
    LinkLoop,
    /// A component of its path (this one) is not a directory.
    NotADirectory(String),
    /// A hard link whose target climbs above the root.
    ClimbsAbove,
    /// A hard link to the root.
    NamesTheRoot,
    /// A hard link to something other than a regular file.
    NotRegular,
    /// A hard link to nothing.
    Missing,
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftOut::LinkLoop => f.write_str("too many levels of symbolic links"),
            LeftOut::NotADirectory(path) => write!(f, "{path} is not a directory"),
            LeftOut::ClimbsAbove => f.write_str("it climbs above the root"),
            LeftOut::NamesTheRoot => f.write_str("it names the root"),
            LeftOut::NotRegular => f.write_str("not a regular file"),
            LeftOut::Missing => f.write_str("no such file"),
        }
    }
}

impl std::error::Error for LeftOut {}

/// A root filesystem: relative path (`etc/os-release`, no leading or
/// trailing slash) → node, in path order (a directory before its contents).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// Every path but the root.
    pub nodes: BTreeMap<String, Node>,
    /// Whether a path may lie below one missing from the tree: an opaque
    /// directory removes the directories of the layers below it but keeps
    /// what its own layer put in them.
    orphans: bool,
}

impl Tree {
    /// Applies one entry of layer `id.layer`; `last` is the directory the
    /// entry applied before it (in the same pass) went in.
    pub fn apply(
        &mut self,
        entry: Entry,
        id: ContentId,
        last: &mut LastDir,
        warn: &mut dyn FnMut(String),
    ) {
        let layer = id.layer;
        let Some(name) = self.locate(&entry.path, last, warn) else {
            return;
        };
        if name.starts_with(WHITEOUT) {
            self.whiteout(last, &name, layer);
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
                        self.insert(last, &name, kind, meta, layer);
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
        self.insert(last, &name, kind, entry.meta, layer);
    }

    /// Where the entry at `path` goes: its parent directory, resolved, in
    /// `last.dir` (not resolved again when it is the one of the entry
    /// before, see [`LastDir`]), and its name. `None` for the root itself
    /// and, after a warning, for an entry left out.
    fn locate<'p>(
        &self,
        path: &'p str,
        last: &mut LastDir,
        warn: &mut dyn FnMut(String),
    ) -> Option<Cow<'p, str>> {
        let plain = split(path);
        if let Some((written, name)) = plain
            && last.is(written)
        {
            return Some(Cow::Borrowed(name));
        }
        let Some(mut comps) = clean(path) else {
            warn(format!("{path}: climbs above the root; left out"));
            return None;
        };
        let name = comps.pop()?; // None: the root itself
        let dir = match self.resolve(&comps) {
            Ok(dir) => dir,
            Err(why) => {
                warn(format!("{path}: {why}; left out"));
                return None;
            }
        };
        let reusable = plain.filter(|_| dir == comps).map(|(written, _)| written);
        last.set(reusable, &dir);
        Some(match plain {
            Some((_, name)) => Cow::Borrowed(name),
            None => Cow::Owned(name),
        })
    }

    /// Applies whiteout entry `name` (`.wh.NAME` or the opaque marker) of
    /// layer `layer` in directory `last.dir`: hides what the layers below
    /// put there.
    fn whiteout(&mut self, last: &mut LastDir, name: &str, layer: usize) {
        self.make_dirs(last, layer);
        let Some(hidden) = name.strip_prefix(WHITEOUT) else {
            return;
        };
        if name == OPAQUE {
            self.remove_below(&last.dir, layer);
        } else if !hidden.starts_with(WHITEOUT) {
            let path = child(&last.dir, hidden);
            if self.nodes.get(&path).is_some_and(|n| n.layer < layer) {
                self.remove_subtree(&path);
            }
        }
    }

    /// The file a hard link entry names: its kind (sharing its content)
    /// and metadata.
    fn hard_link_target(&self, target: &str) -> Result<(Kind, Meta), LeftOut> {
        let mut comps = clean(target).ok_or(LeftOut::ClimbsAbove)?;
        let name = comps.pop().ok_or(LeftOut::NamesTheRoot)?;
        let mut path = self.resolve(&comps)?;
        path.push(name);
        match self.nodes.get(&join(&path)) {
            Some(
                node @ Node {
                    kind: Kind::File { .. },
                    ..
                },
            ) => Ok((node.kind.clone(), node.meta.clone())),
            Some(_) => Err(LeftOut::NotRegular),
            None => Err(LeftOut::Missing),
        }
    }

    /// Puts `kind` at `name` in directory `last.dir`, replacing what is
    /// there (a directory over a directory keeps its contents).
    fn insert(&mut self, last: &mut LastDir, name: &str, kind: Kind, meta: Meta, layer: usize) {
        self.make_dirs(last, layer);
        self.place(child(&last.dir, name), Node { kind, meta, layer });
    }

    /// Puts `node` at `path`, replacing what is there and everything below
    /// it, except that a directory over a directory keeps its contents.
    fn place(&mut self, path: String, node: Node) {
        match self.nodes.entry(path) {
            btree_map::Entry::Vacant(slot) => {
                // Nothing lies below a path missing from the tree, unless
                // an opaque directory left some.
                let below = self.orphans.then(|| slot.key().clone());
                slot.insert(node);
                if let Some(path) = below {
                    self.remove_below(&path, usize::MAX);
                }
            }
            btree_map::Entry::Occupied(mut slot) => {
                let keep = matches!(node.kind, Kind::Dir) && matches!(slot.get().kind, Kind::Dir);
                slot.insert(node);
                if !keep {
                    let path = slot.key().clone();
                    self.remove_below(&path, usize::MAX);
                }
            }
        }
    }

    /// Creates the missing directories of `last.dir`, unless that was done
    /// for it already.
    fn make_dirs(&mut self, last: &mut LastDir, layer: usize) {
        if !last.made {
            self.ensure_dirs(&last.dir, layer);
            last.made = true;
        }
    }

    /// Creates the missing directories of `dir` (resolved; `""`: the root)
    /// and its parents.
    fn ensure_dirs(&mut self, dir: &str, layer: usize) {
        if dir.is_empty() {
            return;
        }
        let ends = dir.match_indices('/').map(|(i, _)| i);
        for end in ends.chain([dir.len()]) {
            let prefix = &dir[..end];
            if !self.nodes.contains_key(prefix) {
                let node = Node {
                    kind: Kind::Dir,
                    meta: Meta::implicit_dir(),
                    layer,
                };
                self.nodes.insert(prefix.to_owned(), node);
            }
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
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut doomed = Vec::new();
        let mut kept = false;
        let below = self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(&prefix));
        for (path, node) in below {
            if node.layer < layer {
                doomed.push(path.clone());
            } else {
                kept = true;
            }
        }
        self.orphans |= kept && !doomed.is_empty();
        for path in doomed {
            self.nodes.remove(&path);
        }
    }

    /// Resolves directory components inside the root: symlinks followed
    /// (an absolute target starts again at the root, `..` stops at the
    /// root), a missing directory taken as one to create. Fails when a
    /// component is not a directory or links loop.
    pub fn resolve(&self, comps: &[String]) -> Result<Vec<String>, LeftOut> {
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
                        return Err(LeftOut::LinkLoop);
                    }
                    out.pop();
                    if target.starts_with('/') {
                        out.clear();
                    }
                    for part in target.split('/').rev() {
                        pending.push_front(part.to_owned());
                    }
                }
                Some(_) => return Err(LeftOut::NotADirectory(join(&out))),
            }
        }
        Ok(out)
    }

    /// Lays `upper` over this tree, as BuildKit merges platforms
    /// (`platform-split=false`): each path of `upper` replaces the same
    /// path here (directories over directories keep their contents).
    pub fn overlay(&mut self, upper: Tree) {
        self.orphans |= upper.orphans;
        for (path, node) in upper.nodes {
            self.place(path, node);
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
