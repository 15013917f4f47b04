//! Artifact references: `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:HEX`.

use std::fmt;

use super::ArtifactError;
use crate::sandbox::allow_list::AllowList;

/// `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:HEX` (the registry
/// is always named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// The repository, e.g. `exporters/hello`.
    pub repository: String,
    /// A tag or a manifest digest.
    pub target: Target,
}

/// What a reference points at in its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A tag.
    Tag(String),
    /// A manifest digest (`sha256:…`).
    Digest(String),
}

impl Reference {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Reference, ArtifactError> {
        let bad = |message: &str| ArtifactError {
            reference: text.to_string(),
            message: message.to_string(),
        };
        let (registry, rest) = text
            .split_once('/')
            .filter(|(host, _)| host.contains(['.', ':']) || *host == "localhost")
            .ok_or_else(|| bad("expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:DIGEST (the registry must be named)"))?;
        AllowList::parse(&[registry])
            .map_err(|_| bad(&format!("{registry:?} is not a registry host[:port]")))?;
        let (repository, target) = match rest.split_once('@') {
            Some((repo, digest)) => {
                if !is_sha256_digest(digest) {
                    return Err(bad(&format!("{digest:?} is not a sha256:HEX digest")));
                }
                (repo, Target::Digest(digest.to_string()))
            }
            None => match rest.rsplit_once(':') {
                Some((repo, tag)) => {
                    let valid = !tag.is_empty()
                        && tag.len() <= 128
                        && !tag.starts_with(['.', '-'])
                        && tag
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                    if !valid {
                        return Err(bad(&format!("{tag:?} is not a valid tag")));
                    }
                    (repo, Target::Tag(tag.to_string()))
                }
                None => return Err(bad("a tag (:TAG) or a digest (@sha256:…) is needed")),
            },
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|part| {
                part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !valid_repo {
            return Err(bad(&format!(
                "{repository:?} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')"
            )));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            target,
        })
    }

    /// The last part of the repository: the name a policy knows a pulled
    /// component by (`exporters/hello` → `hello`).
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    pub(super) fn target_str(&self) -> &str {
        match &self.target {
            Target::Tag(t) | Target::Digest(t) => t,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = match self.target {
            Target::Tag(_) => ':',
            Target::Digest(_) => '@',
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry,
            self.repository,
            self.target_str()
        )
    }
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
pub(super) fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
