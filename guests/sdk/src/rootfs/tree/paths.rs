//! Paths inside the root: cleaned components, symlink targets kept inside
//! the tree.

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

/// The parent of `path` as written and its name, when the name is a plain
/// one (not `.` or `..`): `a/./b/c/` → (`a/./b`, `c`), `c` → (``, `c`).
/// The cleaned components of `path` are then those of the parent and the
/// name.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    let path = path.trim_end_matches('/');
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    (!matches!(name, "" | "." | "..")).then_some((parent, name))
}

/// `dir/name` (`name` in the root when `dir` is empty).
pub(super) fn child(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        return name.to_owned();
    }
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    path.push_str(dir);
    path.push('/');
    path.push_str(name);
    path
}

/// `a/b` of `["a", "b"]`.
pub(super) fn join(parts: &[String]) -> String {
    parts.join("/")
}
