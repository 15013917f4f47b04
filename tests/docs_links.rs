//! The documentation's links (issue 17, item 8): every relative Markdown
//! link in `README.md` and in the pages under `docs/` names a file or
//! directory of the repository, and a link with an anchor (`page.md#part`,
//! or `#part` within the page) names a heading of that page, as GitHub
//! makes anchors from headings. The README stays a front door: at most
//! [`README_MAX_LINES`] lines.
//!
//! Links inside code (fenced blocks and `` `spans` ``) are text, not links;
//! `http(s)://`, `mailto:` and other URLs with a scheme are not checked.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The README's length limit.
const README_MAX_LINES: usize = 250;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ has a parent")
        .to_path_buf()
}

/// `README.md` and every `.md` under `docs/`, as paths relative to `root`.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md")];
    let mut dirs = vec![PathBuf::from("docs")];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(root.join(&dir))
            .unwrap_or_else(|e| panic!("{}: {e}", root.join(&dir).display()));
        for entry in entries {
            let entry = entry.unwrap();
            let path = dir.join(entry.file_name());
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The page's lines outside fenced code blocks, with inline code spans
/// blanked out, each with its 1-based line number.
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut fence: Option<String> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let first = trimmed.chars().next().unwrap_or(' ');
        let marker: String = if first == '`' || first == '~' {
            trimmed.chars().take_while(|&c| c == first).collect()
        } else {
            String::new()
        };
        let is_fence = marker.len() >= 3;
        match &fence {
            Some(open) => {
                if is_fence && marker.starts_with(open.as_str()) && trimmed.trim() == marker {
                    fence = None;
                }
            }
            None if is_fence => fence = Some(marker),
            None => lines.push((i + 1, without_code_spans(line))),
        }
    }
    lines
}

/// `line` with the contents of its code spans (`` `x` ``, ``` `` x `` ```)
/// removed; a backtick run without a closing run of the same length stays.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        // Find the closing run of exactly `run` backticks.
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let n = chars[j..].iter().take_while(|&&c| c == '`').count();
                if n == run {
                    close = Some(j);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                out.push_str("``");
                i = j + run;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The link targets of one prose line: inline links and images
/// (`[text](target "title")`, `[text](<target>)`) and reference
/// definitions (`[label]: target`).
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(end) = trimmed.find("]:")
        && !trimmed[..end].contains("](")
    {
        let target = trimmed[end + 2..].split_whitespace().next().unwrap_or("");
        if !target.is_empty() {
            targets.push(target.trim_matches(|c| c == '<' || c == '>').to_owned());
        }
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        // The target runs to the `)` that balances the opening one.
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = k;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let inside = after[..end].trim();
        let target = if let Some(angle) = inside.strip_prefix('<') {
            angle.split('>').next().unwrap_or("")
        } else {
            inside.split_whitespace().next().unwrap_or("")
        };
        targets.push(target.to_owned());
        rest = &after[end..];
    }
    targets
}

/// The anchor GitHub gives a heading: lowercase; letters, digits, `-` and
/// `_` kept, each space a `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a page's headings produce (`## A b` → `a-b`; a repeated
/// heading gets `-1`, `-2`, … as on GitHub).
fn anchors(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = Vec::new();
    for (_, line) in prose_lines_keeping_code(text) {
        let trimmed = line.trim_start();
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
        // The rendered text: link and emphasis markup and backticks go.
        let rendered: String = render_inline(title);
        let base = slug(&rendered);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// Like [`prose_lines`], but code spans kept (a heading's `` `code` `` is
/// part of its anchor).
fn prose_lines_keeping_code(text: &str) -> Vec<(usize, String)> {
    let kept: Vec<&str> = text.lines().collect();
    prose_lines(text)
        .into_iter()
        .map(|(n, _)| (n, kept[n - 1].to_owned()))
        .collect()
}

/// A heading's text as rendered: `[text](url)` → `text`, `*`/`` ` `` gone.
fn render_inline(title: &str) -> String {
    let mut out = String::new();
    let mut rest = title;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) if after[close + 2..].contains(')') => {
                out.push_str(&after[..close]);
                let tail = &after[close + 2..];
                rest = &tail[tail.find(')').unwrap() + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.chars().filter(|&c| c != '`' && c != '*').collect()
}

/// `%20` and the like, decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/../b/./c` → `b/c`, or `None` when it climbs above the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Every broken relative link of the pages under `root`, as
/// `PAGE:LINE: [TARGET] why`.
fn broken_links(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut read = |path: &Path| -> Option<String> {
        if !texts.contains_key(path) {
            let text = fs::read_to_string(root.join(path)).ok()?;
            texts.insert(path.to_path_buf(), text);
        }
        texts.get(path).cloned()
    };
    let mut broken = Vec::new();
    for page in pages {
        let text = read(page).unwrap_or_else(|| panic!("{}: unreadable", page.display()));
        for (line_no, line) in prose_lines(&text) {
            for target in link_targets(&line) {
                let has_scheme = target.split_once(':').is_some_and(|(scheme, _)| {
                    !scheme.is_empty()
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                });
                if target.starts_with("//") || has_scheme {
                    continue;
                }
                let here = format!("{}:{line_no}: ({target})", page.display());
                if target.is_empty() {
                    broken.push(format!("{here} an empty link"));
                    continue;
                }
                let (path_part, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let path_part = percent_decode(path_part);
                let resolved = if path_part.is_empty() {
                    page.clone()
                } else if let Some(from_root) = path_part.strip_prefix('/') {
                    PathBuf::from(from_root)
                } else {
                    page.parent().unwrap().join(&path_part)
                };
                let Some(resolved) = normalize(&resolved) else {
                    broken.push(format!("{here} climbs out of the repository"));
                    continue;
                };
                let full = root.join(&resolved);
                if !full.exists() {
                    broken.push(format!("{here} {} does not exist", resolved.display()));
                    continue;
                }
                let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
                    continue;
                };
                if !full.is_file() || resolved.extension().is_none_or(|e| e != "md") {
                    continue; // `file.rs#L10` and the like: GitHub's, not a heading.
                }
                let target_text = read(&resolved).unwrap_or_default();
                let anchor = percent_decode(anchor).to_lowercase();
                let known = anchors(&target_text);
                if !known.contains(&anchor) {
                    broken.push(format!(
                        "{here} no heading of {} gives #{anchor} (it has: {})",
                        resolved.display(),
                        known.join(", ")
                    ));
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_readme_and_docs_resolves() {
    let root = repo_root();
    let pages = pages(&root);
    assert!(
        pages.len() > 1,
        "no pages found under {}",
        root.join("docs").display()
    );
    let broken = broken_links(&root, &pages);
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn readme_is_a_front_door() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, over {README_MAX_LINES}: move reference material to docs/"
    );
}

/// The checker itself finds what it must: a missing file, a missing
/// anchor (in another page and in the same one), a path climbing out;
/// and ignores links in code, URLs and anchors GitHub would make.
#[test]
fn the_link_checker_finds_broken_links() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("docs/sub")).unwrap();
    fs::write(
        root.join("README.md"),
        "# Top\n\
         ## Plugins by name (`type=NAME`)\n\
         ## Repeated\n\
         ## Repeated\n\
         [ok](docs/a.md) [ok](docs/a.md#the-a-page) [ok](#plugins-by-name-typename)\n\
         [ok](#repeated-1) [ok](docs/sub) [ok](https://example.com/x) [ok](mailto:a@b)\n\
         `[code](nowhere.md)` and [ok](docs/a.md \"a title\")\n\
         ```\n[fenced](nowhere.md)\n```\n\
         [missing](docs/nowhere.md) [bad anchor](docs/a.md#nope) [bad self](#nope)\n\
         [out](../outside.md)\n\
         [ref]: docs/also-missing.md\n",
    )
    .unwrap();
    fs::write(
        root.join("docs/a.md"),
        "# The `a` page\n[ok](../README.md#top) [ok](sub/b.md) [missing](b.md)\n",
    )
    .unwrap();
    fs::write(root.join("docs/sub/b.md"), "# B\n").unwrap();

    let all = pages(root);
    assert_eq!(
        all,
        ["README.md", "docs/a.md", "docs/sub/b.md"].map(PathBuf::from)
    );
    let broken = broken_links(root, &all);
    let expected = [
        "README.md:11: (docs/nowhere.md)",
        "README.md:11: (docs/a.md#nope)",
        "README.md:11: (#nope)",
        "README.md:12: (../outside.md)",
        "README.md:13: (docs/also-missing.md)",
        "docs/a.md:2: (b.md)",
    ];
    assert_eq!(
        broken.len(),
        expected.len(),
        "expected {expected:#?}, found {broken:#?}"
    );
    for (found, want) in broken.iter().zip(expected) {
        assert!(found.starts_with(want), "expected {want}, found {found}");
    }
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Plugins by name (`type=NAME`)"),
        "plugins-by-name-typename"
    );
    assert_eq!(
        slug("Image options (oci, docker)"),
        "image-options-oci-docker"
    );
    assert_eq!(
        slug("What the host does for a component, and what it is charged to"),
        "what-the-host-does-for-a-component-and-what-it-is-charged-to"
    );
    assert_eq!(slug("runtime/src"), "runtimesrc");
    assert_eq!(slug("snake_case and-dash"), "snake_case-and-dash");
}
