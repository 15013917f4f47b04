//! Tests of the tree: layers applied in order, whiteouts, hard links,
//! hostile paths, overlays.

use tar::EntryType;

use super::{ContentId, Entry, Meta, Tree, contained_target};

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
            offset: 0,
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
