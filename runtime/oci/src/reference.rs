//! Image references by docker's rules (`reference.ParseNormalizedNamed`,
//! then `TagNameOnly`): `alpine` is `docker.io/library/alpine:latest`,
//! `user/app` is `docker.io/user/app:latest`, a first component with a `.`
//! or a `:` (or `localhost`, or an uppercase letter) names the registry
//! (`example.com:5000/a/b:1.0`), `@sha256:` pins a digest; and back to the
//! short form docker shows ([`familiar`]: `alpine:latest`).
//!
//! [`split`] says where the parts are without judging them (for text that
//! is only normalised, never trusted); [`Reference::parse`] checks each
//! part as docker does.

use std::borrow::Cow;
use std::fmt;

use crate::digest::Sha256Digest;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Other names of Docker Hub (in references, credentials and configs).
pub const DOCKER_HUB_ALIASES: &[&str] = &[
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];
/// The tag of a reference that has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository name (`domain/path`).
const NAME_MAX: usize = 255;

/// An image reference, checked: registry (`domain`), repository `path`,
/// and a tag, a digest, both or neither.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Sha256Digest>,
}

/// A text that is not an image reference, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceError {
    /// The text refused.
    pub text: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Nothing was given.
    Empty,
    /// The digest is not `sha256:` and 64 lowercase hex digits.
    Digest(String),
    /// The tag is not 1-128 of letters, digits, `_`, `.`, `-` (not first).
    Tag(String),
    /// The registry is not `host[:port]`.
    Domain(String),
    /// A repository path component is not lowercase letters and digits
    /// joined by separators.
    Component(String),
    /// The repository name is longer than 255 characters.
    TooLong,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "empty image name"),
            Problem::Digest(d) => write!(f, "invalid digest {d:?}"),
            Problem::Tag(t) => write!(f, "invalid tag {t:?}"),
            Problem::Domain(d) => write!(f, "invalid registry host {d:?}"),
            Problem::Component(c) => write!(
                f,
                "invalid repository path component {c:?} (lowercase letters, digits and separators only)"
            ),
            Problem::TooLong => write!(f, "repository name longer than {NAME_MAX} characters"),
        }
    }
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Empty => write!(f, "{}", self.problem),
            _ => write!(f, "{:?}: {}", self.text, self.problem),
        }
    }
}

impl std::error::Error for ReferenceError {}

/// Where docker's rules put the parts of a reference, nothing checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// The registry: the first component when it names one, else
    /// `docker.io` (`index.docker.io` folded into it).
    pub domain: &'a str,
    /// Whether the text named the registry.
    pub explicit_domain: bool,
    /// The repository path; a one-component Docker Hub path is in
    /// `library/`.
    pub path: Cow<'a, str>,
    /// The tag, after the last `:` that no `/` follows.
    pub tag: Option<&'a str>,
    /// The digest, after the first `@`.
    pub digest: Option<&'a str>,
}

/// Splits `text` into its parts by docker's rules, checking nothing.
pub fn split(text: &str) -> Parts<'_> {
    let (rest, digest) = match text.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (text, None),
    };
    let (repo, tag) = match rest.rfind(':') {
        Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    let (domain, explicit_domain, path) = match repo.split_once('/') {
        Some((first, path)) if names_registry(first) => (first, true, path),
        _ => (DOCKER_HUB, false, repo),
    };
    let domain = if domain == DOCKER_HUB_ALIASES[0] {
        DOCKER_HUB
    } else {
        domain
    };
    let path = if domain == DOCKER_HUB && !path.contains('/') {
        Cow::Owned(format!("library/{path}"))
    } else {
        Cow::Borrowed(path)
    };
    Parts {
        domain,
        explicit_domain,
        path,
        tag,
        digest,
    }
}

/// Whether the first component of a name is a registry rather than part
/// of a Docker Hub path: it has a `.` or a `:`, is `localhost`, or has an
/// uppercase letter (which a path may not).
fn names_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first
}

impl Parts<'_> {
    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The full form, `:latest` added when there is neither tag nor
    /// digest: `domain/path[:tag][@digest]`.
    pub fn normalized(&self) -> String {
        let mut out = self.name();
        match (self.tag, self.digest) {
            (Some(t), _) => {
                out.push(':');
                out.push_str(t);
            }
            (None, None) => {
                out.push(':');
                out.push_str(DEFAULT_TAG);
            }
            (None, Some(_)) => {}
        }
        if let Some(d) = self.digest {
            out.push('@');
            out.push_str(d);
        }
        out
    }
}

impl Reference {
    /// Parses and checks a reference as docker does
    /// (`ParseNormalizedNamed`): short Docker Hub names expanded, no tag
    /// added (see [`Reference::with_default_tag`]).
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let fail = |problem| ReferenceError {
            text: text.to_owned(),
            problem,
        };
        if text.is_empty() {
            return Err(fail(Problem::Empty));
        }
        let parts = split(text);
        let digest = match parts.digest {
            Some(d) => Some(Sha256Digest::parse(d).map_err(|_| fail(Problem::Digest(d.into())))?),
            None => None,
        };
        if let Some(t) = parts.tag
            && !is_tag(t)
        {
            return Err(fail(Problem::Tag(t.to_owned())));
        }
        if !is_domain(parts.domain) {
            return Err(fail(Problem::Domain(parts.domain.to_owned())));
        }
        if let Some(c) = parts.path.split('/').find(|c| !is_component(c)) {
            return Err(fail(Problem::Component(c.to_owned())));
        }
        if parts.domain.len() + 1 + parts.path.len() > NAME_MAX {
            return Err(fail(Problem::TooLong));
        }
        Ok(Reference {
            domain: parts.domain.to_owned(),
            path: parts.path.into_owned(),
            tag: parts.tag.map(str::to_owned),
            digest,
        })
    }

    /// The reference with tag `latest` when it has neither tag nor digest
    /// (docker's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The registry as named in references (`docker.io`, `ghcr.io`,
    /// `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The host (and port) that serves the registry's API: Docker Hub's is
    /// `registry-1.docker.io`.
    pub fn registry(&self) -> &str {
        registry_host(&self.domain)
    }

    /// The repository path in its registry (`library/alpine`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Sha256Digest> {
        self.digest.as_ref()
    }

    /// The short form docker shows ([`familiar`]).
    pub fn familiar(&self) -> String {
        familiar(&self.to_string()).to_owned()
    }
}

impl fmt::Display for Reference {
    /// `domain/path[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Normalises a reference, or says why it is not one: checked, short names
/// expanded, `:latest` added when there is neither tag nor digest
/// (`alpine` → `docker.io/library/alpine:latest`).
pub fn normalize(text: &str) -> Result<String, ReferenceError> {
    Reference::parse(text).map(|r| r.with_default_tag().to_string())
}

/// The short form docker shows for a normalised name or repository
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

/// A normalised name split into repository and tag
/// (`docker.io/library/alpine:latest` → `("docker.io/library/alpine",
/// "latest")`); none for a reference by digest or without a tag.
pub fn split_tag(normalized: &str) -> Option<(&str, &str)> {
    if normalized.contains('@') {
        return None;
    }
    let (repo, tag) = normalized.rsplit_once(':')?;
    (!tag.contains('/')).then_some((repo, tag))
}

/// The `org.opencontainers.image.ref.name` of a normalised name: its tag,
/// or none for a reference by digest.
pub fn ref_name(normalized: &str) -> Option<&str> {
    split_tag(normalized).map(|(_, tag)| tag)
}

/// The host that serves the API of the registry `domain` names:
/// `registry-1.docker.io` for Docker Hub, else `domain` itself.
pub fn registry_host(domain: &str) -> &str {
    if domain == DOCKER_HUB {
        DOCKER_HUB_REGISTRY
    } else {
        domain
    }
}

/// `host[:port]` (or `[v6]:port`): DNS labels of letters, digits and inner
/// hyphens, and a numeric port.
fn is_domain(domain: &str) -> bool {
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
    host_ok && port_ok
}

/// A path component: lowercase alphanumeric runs joined by `.`, `_`, `__`
/// or dashes.
fn is_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
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
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A tag: a letter, digit or `_`, then up to 127 of those, `.` and `-`.
fn is_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    (1..=128).contains(&t.len())
        && t.starts_with(word)
        && t.chars().all(|c| word(c) || c == '.' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex() -> String {
        "0".repeat(64)
    }

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
        assert_eq!(
            normalize("index.docker.io/foo").unwrap(),
            "docker.io/library/foo:latest"
        );
        assert_eq!(
            normalize("docker.io/alpine:3").unwrap(),
            "docker.io/library/alpine:3"
        );
        let d = format!("a/b@sha256:{}", hex());
        assert_eq!(normalize(&d).unwrap(), format!("docker.io/{d}"));
        let both = format!("a:1@sha256:{}", hex());
        assert_eq!(
            normalize(&both).unwrap(),
            format!("docker.io/library/{both}")
        );
        assert_eq!(normalize("[::1]:5000/a").unwrap(), "[::1]:5000/a:latest");
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let problem = |text: &str| Reference::parse(text).unwrap_err().problem;
        assert_eq!(problem(""), Problem::Empty);
        assert_eq!(problem("Upper"), Problem::Component("Upper".into()));
        assert_eq!(problem("a b"), Problem::Component("a b".into()));
        assert_eq!(problem("a:"), Problem::Tag(String::new()));
        assert_eq!(problem("a@sha256:00"), Problem::Digest("sha256:00".into()));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert_eq!(problem(&format!("a@{upper}")), Problem::Digest(upper));
        assert_eq!(problem("-x.com/a"), Problem::Domain("-x.com".into()));
        assert_eq!(problem("h:p/a"), Problem::Domain("h:p".into()));
        assert_eq!(problem(&"a".repeat(250)), Problem::TooLong);
        let e = Reference::parse("a b").unwrap_err().to_string();
        assert!(
            e.starts_with("\"a b\": invalid repository path component"),
            "{e}"
        );
        assert_eq!(
            Reference::parse("").unwrap_err().to_string(),
            "empty image name"
        );
    }

    #[test]
    fn parts_of_a_reference() {
        let r = Reference::parse(&format!("ghcr.io/o/r:1@sha256:{}", hex())).unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("ghcr.io", "o/r", Some("1"))
        );
        assert_eq!(r.digest().unwrap().hex(), hex());
        assert_eq!(r.registry(), "ghcr.io");
        let hub = Reference::parse("alpine").unwrap();
        assert_eq!(hub.tag(), None);
        assert_eq!(hub.registry(), DOCKER_HUB_REGISTRY);
        assert_eq!(hub.name(), "docker.io/library/alpine");
        assert_eq!(hub.with_default_tag().familiar(), "alpine:latest");
        let parts = split("127.0.0.1:5000/app:1");
        assert!(parts.explicit_domain);
        assert_eq!((parts.domain, parts.tag), ("127.0.0.1:5000", Some("1")));
        assert!(!split("user/app").explicit_domain);
        assert_eq!(
            split("foo/bar@sha256:ab").normalized(),
            "docker.io/foo/bar@sha256:ab"
        );
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
        assert_eq!(ref_name(&format!("docker.io/a/b@sha256:{}", hex())), None);
    }
}
