//! Tests of the tree: layers applied in order, whiteouts, hard links,
//! hostile paths, overlays.

use tar::EntryType;

use super::{ContentId, Entry, LastDir, Meta, Tree, contained_target};

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

type Entries<'a> = [(usize, &'a str, EntryType, Option<&'a str>)];

/// Applies `(layer, path, type, link)` entries, in one pass (each entry
/// knows the directory the one before went in); returns the tree and the
/// warnings.
fn build(entries: &Entries<'_>) -> (Tree, Vec<String>) {
    build_with(entries, false)
}

/// [`build`], or with `alone` each entry applied as if it were the first
/// of its pass (its parent resolved from the root).
fn build_with(entries: &Entries<'_>, alone: bool) -> (Tree, Vec<String>) {
    let mut tree = Tree::default();
    let mut warnings = Vec::new();
    let mut last = LastDir::default();
    for (ordinal, (layer, path, kind, link)) in entries.iter().enumerate() {
        let id = ContentId {
            platform: 0,
            layer: *layer,
            ordinal: ordinal as u64,
            offset: 0,
        };
        if alone {
            last = LastDir::default();
        }
        let entry = entry(path, *kind, *link);
        tree.apply(entry, id, &mut last, &mut |w| warnings.push(w));
    }
    (tree, warnings)
}

/// Asserts that a pass gives the tree and warnings of the same entries
/// each resolved from the root; returns the paths.
fn same_as_alone(entries: &Entries<'_>) -> (Vec<String>, Vec<String>) {
    let (tree, warnings) = build(entries);
    let (alone, alone_warnings) = build_with(entries, true);
    assert_eq!(tree.nodes, alone.nodes);
    assert_eq!(warnings, alone_warnings);
    (tree.nodes.keys().cloned().collect(), warnings)
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

#[test]
fn a_parent_changed_by_the_entry_before_is_resolved_again() {
    use EntryType::*;
    // `p/n/s` leads back to `p`: `p/n/s/n` replaces `p/n` (and the link
    // in it) with a file, so `p/n/s/later` has no directory left.
    let (paths, warnings) = same_as_alone(&[
        (0, "p/n/", Directory, None),
        (0, "p/n/s", Symlink, Some("..")),
        (0, "p/n/s/n", Regular, None),
        (0, "p/n/s/later", Regular, None),
    ]);
    assert_eq!(paths, ["p", "p/n"]);
    assert_eq!(warnings, ["p/n/s/later: p/n is not a directory; left out"]);
    // A directory replaced by a file, a symlink or a whiteout between two
    // entries in it.
    let (paths, warnings) = same_as_alone(&[
        (0, "a/b/x", Regular, None),
        (0, "a/b", Regular, None),
        (0, "a/b/y", Regular, None),
        (0, "c/d/x", Regular, None),
        (0, "c/d", Symlink, Some("../e")),
        (0, "c/d/y", Regular, None),
        (0, "c/d/z", Regular, None),
        (1, "f/g/x", Regular, None),
        (1, "f/.wh.g", Regular, None),
        (1, "f/g/y", Regular, None),
        (2, "f/g/.wh..wh..opq", Regular, None),
        (2, "f/g/z", Regular, None),
        (2, "./f//g/./w/", Directory, None),
        (2, "f/g/w/..", Directory, None),
        (2, "f/g/.", Regular, None),
    ]);
    assert_eq!(
        paths,
        ["a", "a/b", "c", "c/d", "e", "e/y", "e/z", "f", "f/g"]
    );
    assert_eq!(warnings, ["a/b/y: a/b is not a directory; left out"]);
}

#[test]
fn entries_of_one_directory_go_in_it() {
    use EntryType::*;
    let (paths, warnings) = same_as_alone(&[
        (0, "usr/", Directory, None),
        (0, "usr/lib/", Directory, None),
        (0, "usr/lib/a", Regular, None),
        (0, "usr/lib/b", Link, Some("usr/lib/a")),
        (0, "usr/lib/c", Symlink, Some("a")),
        (0, "usr/lib/.wh.a", Regular, None),
        (0, "usr/lib/d/e", Regular, None),
        (0, "usr/lib/f", Regular, None),
        (0, "/usr/lib/g", Regular, None),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        paths,
        [
            "usr",
            "usr/lib",
            "usr/lib/a",
            "usr/lib/b",
            "usr/lib/c",
            "usr/lib/d",
            "usr/lib/d/e",
            "usr/lib/f",
            "usr/lib/g"
        ]
    );
}

#[test]
fn what_an_opaque_directory_keeps_is_replaced_with_its_parent() {
    use EntryType::*;
    // The opaque root removes `a` (layer 0) but keeps `a/y` (layer 1); a
    // file at `a` then replaces what is below it.
    let (tree, warnings) = build(&[
        (0, "a/", Directory, None),
        (0, "a/x", Regular, None),
        (1, "a/y", Regular, None),
        (1, ".wh..wh..opq", Regular, None),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(paths(&tree), ["a/y"]);
    let (tree, _) = build(&[
        (0, "a/", Directory, None),
        (1, "a/y/z", Regular, None),
        (1, ".wh..wh..opq", Regular, None),
        (2, "a", Regular, None),
        (2, "b", Regular, None),
    ]);
    assert_eq!(paths(&tree), ["a", "b"]);
    // Platforms merged: what the middle one kept goes when the top one
    // puts a file at its parent.
    let (mut merged, _) = build(&[(0, "x", Regular, None)]);
    let (middle, _) = build(&[
        (0, "a/b/", Directory, None),
        (1, "a/b/c", Regular, None),
        (1, ".wh..wh..opq", Regular, None),
    ]);
    let (top, _) = build(&[(0, "a/b", Regular, None)]);
    merged.overlay(middle);
    assert_eq!(paths(&merged), ["a/b/c", "x"]);
    merged.overlay(top);
    assert_eq!(paths(&merged), ["a", "a/b", "x"]);
}
