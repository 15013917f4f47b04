//! Choosing the image: splitting the user's `INPUT[:REF]` string, and
//! matching REF against the names and digests of the images an input holds.

use std::path::{Path, PathBuf};

use outport_oci::reference;

use crate::digest::is_sha256_digest;
use crate::error::Error;

/// The user's input split into the path and the optional reference.
#[derive(Debug)]
pub(crate) struct InputRef {
    /// The path part.
    pub(crate) path: PathBuf,
    /// The path part as the user wrote it, for messages.
    pub(crate) display: String,
    /// The reference part, if any.
    pub(crate) reference: Option<String>,
}

/// Splits `INPUT[:REF]`: the whole string if it exists as a path, else the
/// first split at a `:` whose left part exists (as skopeo's `oci:DIR:REF`).
pub(crate) fn split_input(input: &str) -> Result<InputRef, Error> {
    let whole = |display: &str, reference: Option<&str>| InputRef {
        path: PathBuf::from(display),
        display: display.to_owned(),
        reference: reference.filter(|r| !r.is_empty()).map(str::to_owned),
    };
    if !input.is_empty() && exists(input) {
        return Ok(whole(input, None));
    }
    for (i, _) in input.match_indices(':') {
        let (path, rest) = (&input[..i], &input[i + 1..]);
        if !path.is_empty() && exists(path) {
            return Ok(whole(path, Some(rest)));
        }
    }
    Err(Error::NotFound {
        input: input.to_owned(),
    })
}

fn exists(path: &str) -> bool {
    Path::new(path).symlink_metadata().is_ok()
}

/// One image an input holds, with everything a reference may match.
#[derive(Debug, Default)]
pub(crate) struct Candidate {
    /// How listings name it.
    pub(crate) label: String,
    /// Names matched exactly (also in their normalised docker form).
    names: Vec<String>,
    /// Bare tags, matched when no name matches.
    tags: Vec<String>,
    /// Digests matched by a `sha256:` reference.
    digests: Vec<String>,
}

impl Candidate {
    /// A candidate listed as `label` in messages.
    pub(crate) fn new(label: impl Into<String>) -> Candidate {
        Candidate {
            label: label.into(),
            ..Candidate::default()
        }
    }

    /// Adds a name: an image reference (`docker.io/library/foo:1`, `foo:1`) or a bare tag.
    pub(crate) fn add_name(&mut self, name: &str) {
        self.names.push(name.to_owned());
        if let Some(full) = normalize(name) {
            self.names.push(full);
        }
        match split_tag(name) {
            (_, Some(tag)) => self.tags.push(tag.to_owned()),
            (repo, None) if !repo.contains('/') => self.tags.push(repo.to_owned()),
            _ => {}
        }
    }

    /// Adds a digest that selects this candidate.
    pub(crate) fn add_digest(&mut self, digest: &str) {
        self.digests.push(digest.to_owned());
    }
}

/// How an image is listed: the short form docker shows for a full name
/// (`docker.io/library/foo:1` -> `foo:1`), else the name as is.
pub(crate) fn short_name(name: &str) -> &str {
    reference::familiar(name)
}

/// Picks the candidate `reference` names; `input` names the input in messages.
pub(crate) fn choose(
    input: &str,
    candidates: &[Candidate],
    reference: &str,
) -> Result<usize, Error> {
    let matches: Vec<usize> = if reference.starts_with("sha256:") {
        if !is_sha256_digest(reference) {
            return Err(Error::InvalidDigest {
                path: input.to_owned(),
                digest: reference.to_owned(),
                context: "image reference".to_owned(),
            });
        }
        find(candidates, |c| c.digests.iter().any(|d| d == reference))
    } else {
        let full = normalize(reference);
        let exact = find(candidates, |c| {
            c.names
                .iter()
                .any(|n| n == reference || Some(n) == full.as_ref())
        });
        if exact.is_empty() {
            find(candidates, |c| c.tags.iter().any(|t| t == reference))
        } else {
            exact
        }
    };
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::NoMatch {
            input: input.to_owned(),
            reference: reference.to_owned(),
            problem: "no image matches",
            names: list(candidates.iter()),
        }),
        several => Err(Error::NoMatch {
            input: input.to_owned(),
            reference: reference.to_owned(),
            problem: "several images match",
            names: list(several.iter().map(|&i| &candidates[i])),
        }),
    }
}

/// The error for an input with several images and no reference.
pub(crate) fn ambiguous(input: &str, candidates: &[Candidate]) -> Error {
    Error::Ambiguous {
        input: input.to_owned(),
        count: candidates.len(),
        names: list(candidates.iter()),
    }
}

fn find(candidates: &[Candidate], pred: impl Fn(&Candidate) -> bool) -> Vec<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| pred(c))
        .map(|(i, _)| i)
        .collect()
}

fn list<'a>(candidates: impl Iterator<Item = &'a Candidate>) -> String {
    let labels: Vec<&str> = candidates.map(|c| c.label.as_str()).collect();
    if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.join(", ")
    }
}

/// Splits `repo[:tag]` (a `:` before the last `/` is a registry port),
/// a digest dropped, by docker's rule ([`reference::split`]).
pub(crate) fn split_tag(name: &str) -> (&str, Option<&str>) {
    let name = name.split('@').next().unwrap_or(name);
    match reference::split(name).tag {
        Some(tag) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    }
}

/// The fully qualified docker form of an image reference
/// ([`reference::normalize`]: `foo` -> `docker.io/library/foo:latest`);
/// `None` for digests and for what is not a reference.
pub(crate) fn normalize(name: &str) -> Option<String> {
    if name.contains('@') {
        return None;
    }
    reference::normalize(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_docker_names() {
        assert_eq!(
            normalize("foo").as_deref(),
            Some("docker.io/library/foo:latest")
        );
        assert_eq!(
            normalize("foo:1").as_deref(),
            Some("docker.io/library/foo:1")
        );
        assert_eq!(normalize("me/foo:1").as_deref(), Some("docker.io/me/foo:1"));
        assert_eq!(
            normalize("localhost:5000/foo").as_deref(),
            Some("localhost:5000/foo:latest")
        );
        assert_eq!(short_name("docker.io/library/foo:1"), "foo:1");
    }
}
