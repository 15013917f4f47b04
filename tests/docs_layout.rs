//! The layout table of `docs/architecture.md` is the tree: each folder of
//! `runtime/src` has a row listing exactly its files and subfolders.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The `runtime/src` table's rows: folder -> the entries it lists.
fn table(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let start = text
        .find("| folder | what it holds | files |")
        .expect("docs/architecture.md has no runtime/src table");
    text[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let folder = cells[1].trim_matches('`').to_string();
            let files = cells[3]
                .split(", ")
                .map(|f| f.trim_matches('`').to_string())
                .collect();
            (folder, files)
        })
        .collect()
}

/// The entries of `dir`: `.rs` files, and folders with a trailing `/`.
fn entries(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                Some(format!("{name}/"))
            } else {
                name.ends_with(".rs").then_some(name)
            }
        })
        .collect()
}

#[test]
fn the_architecture_layout_table_matches_runtime_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("../docs/architecture.md")).unwrap();
    let src = root.join("src");
    let rows = table(&text);
    let listed: BTreeSet<String> = rows.iter().map(|(f, _)| f.clone()).collect();
    let folders: BTreeSet<String> = entries(&src)
        .into_iter()
        .filter(|e| e.ends_with('/'))
        .collect();
    assert_eq!(
        listed, folders,
        "folders of runtime/src vs the table's rows"
    );
    for (folder, files) in rows {
        assert_eq!(
            files,
            entries(&src.join(&folder)),
            "runtime/src/{folder}: the table's files vs the tree"
        );
    }
}
