//! Artifact references: `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:HEX`.

use std::fmt;

use outport_oci::{self as oci, reference::Problem};

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
    /// Parses a reference by docker's rules ([`oci::Reference::parse`]),
    /// the registry named and a tag or a digest given; the error says what
    /// is wrong with it.
    pub fn parse(text: &str) -> Result<Reference, ArtifactError> {
        let bad = |message: &str| ArtifactError {
            reference: text.to_string(),
            message: message.to_string(),
        };
        let parts = oci::reference::split(text);
        if !parts.explicit_domain {
            return Err(bad(
                "expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:DIGEST (the registry must be named)",
            ));
        }
        let registry = parts.domain;
        AllowList::parse(&[registry])
            .map_err(|_| bad(&format!("{registry:?} is not a registry host[:port]")))?;
        let parsed = oci::Reference::parse(text).map_err(|e| {
            bad(&match e.problem {
                Problem::Digest(digest) => format!("{digest:?} is not a sha256:HEX digest"),
                Problem::Tag(tag) => format!("{tag:?} is not a valid tag"),
                Problem::Domain(_) => format!("{registry:?} is not a registry host[:port]"),
                Problem::Empty | Problem::Component(_) | Problem::TooLong => format!(
                    "{:?} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')",
                    parts.path
                ),
            })
        })?;
        let target = match (parsed.tag(), parsed.digest()) {
            (Some(tag), None) => Target::Tag(tag.to_string()),
            (None, Some(digest)) => Target::Digest(digest.to_string()),
            (Some(_), Some(_)) => return Err(bad("a tag or a digest, not both")),
            (None, None) => return Err(bad("a tag (:TAG) or a digest (@sha256:…) is needed")),
        };
        Ok(Reference {
            registry: parsed.domain().to_string(),
            repository: parsed.path().to_string(),
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
