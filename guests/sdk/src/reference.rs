//! Image names (`name=`), normalized the way BuildKit's exporters do
//! (`reference.ParseNormalizedNamed` then `TagNameOnly`): `alpine` becomes
//! `docker.io/library/alpine:latest`; and their short form as docker shows
//! them ([`familiar`]: `alpine:latest`).

/// Normalizes an image reference, or says why it is not one.
pub fn normalize(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("empty image name".into());
    }
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    if let Some(d) = digest {
        check_digest(d).map_err(|e| format!("{name:?}: {e}"))?;
    }
    let (repo, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t).map_err(|e| format!("{name:?}: {e}"))?;
    }
    let (domain, path) = split_domain(repo);
    check_domain(domain).map_err(|e| format!("{name:?}: {e}"))?;
    for component in path.split('/') {
        check_component(component).map_err(|e| format!("{name:?}: {e}"))?;
    }
    let mut out = format!("{domain}/{path}");
    if out.len() > 255 {
        return Err(format!(
            "{name:?}: repository name longer than 255 characters"
        ));
    }
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Ok(out)
}

/// The `org.opencontainers.image.ref.name` of a normalized name: its tag, or
/// none for a reference by digest.
pub fn ref_name(normalized: &str) -> Option<&str> {
    split_tag(normalized).map(|(_, tag)| tag)
}

/// A normalized name split into repository and tag
/// (`docker.io/library/alpine:latest` → `("docker.io/library/alpine",
/// "latest")`); none for a reference by digest.
pub fn split_tag(normalized: &str) -> Option<(&str, &str)> {
    if normalized.contains('@') {
        return None;
    }
    let (repo, tag) = normalized.rsplit_once(':')?;
    (!tag.contains('/')).then_some((repo, tag))
}

/// The short form docker shows for a normalized name or repository
/// (`reference.FamiliarString`): `docker.io/library/alpine:latest` →
/// `alpine:latest`, `docker.io/user/app:v1` → `user/app:v1`; names on other
/// registries are unchanged.
pub fn familiar(normalized: &str) -> &str {
    let Some(rest) = normalized.strip_prefix("docker.io/") else {
        return normalized;
    };
    match rest.strip_prefix("library/") {
        Some(short) if !short.split(['@', ':']).next().unwrap_or("").contains('/') => short,
        _ => rest,
    }
}

fn split_domain(repo: &str) -> (&str, String) {
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest.to_owned())
        }
        _ => ("docker.io", repo.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    if domain == "docker.io" && !path.contains('/') {
        return (domain, format!("library/{path}"));
    }
    (domain, path)
}

fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || domain.starts_with('[') => (h, Some(p)),
        _ => (domain, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!("invalid registry host {domain:?}"))
    }
}

/// A path component: lowercase alphanumeric runs joined by `.`, `_`, `__` or dashes.
fn check_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid repository path component {c:?} (lowercase letters, digits and separators only)"
        ))
    };
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return bad();
        }
    }
    Ok(())
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn check_tag(t: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = (1..=128).contains(&t.len())
        && t.starts_with(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {t:?}"))
    }
}

fn check_digest(d: &str) -> Result<(), String> {
    let ok = match d.split_once(':') {
        Some((algo, hex)) => {
            !algo.is_empty()
                && algo
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid digest {d:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize("alpine").unwrap(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(normalize("user/app:v1").unwrap(), "docker.io/user/app:v1");
        assert_eq!(
            normalize("example.com:5000/a/b:1.0").unwrap(),
            "example.com:5000/a/b:1.0"
        );
        assert_eq!(normalize("localhost/x").unwrap(), "localhost/x:latest");
        let d = format!("a/b@sha256:{}", "0".repeat(64));
        assert_eq!(normalize(&d).unwrap(), format!("docker.io/{d}"));
        assert!(normalize("Upper").is_err());
        assert!(normalize("a b").is_err());
        assert!(normalize("a:").is_err());
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
        assert_eq!(familiar("docker.io/library/alpine"), "alpine");
        assert_eq!(familiar("docker.io/user/app:v1"), "user/app:v1");
        assert_eq!(familiar("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(familiar("example.com:5000/a:1"), "example.com:5000/a:1");
        assert_eq!(
            split_tag("example.com:5000/a/b:1.0"),
            Some(("example.com:5000/a/b", "1.0"))
        );
        assert_eq!(split_tag("example.com:5000/a/b"), None);
    }

    #[test]
    fn ref_names() {
        assert_eq!(ref_name("example.com:5000/a/b:1.0"), Some("1.0"));
        assert_eq!(ref_name("docker.io/library/alpine:latest"), Some("latest"));
        assert_eq!(
            ref_name(&format!("docker.io/a/b@sha256:{}", "0".repeat(64))),
            None
        );
    }
}
