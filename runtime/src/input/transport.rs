//! The INPUT argument, spelled as skopeo spells its transports:
//! `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`,
//! `docker-daemon:NAME[:TAG|@DIGEST]`, `docker://REFERENCE`, `-` (standard
//! input) or a bare `PATH[:REF]` as before.

use std::path::PathBuf;

use outport_oci::digest::Sha256Digest;
use outport_oci::reference::Reference;

use super::error::InputError;

/// Where the input image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// A bare path: `PATH[:REF]`, the whole string if it exists, else split
    /// at the first `:` whose left part exists.
    Path(String),
    /// `oci:DIR[:REF]`: an OCI layout directory.
    OciLayout(PathRef),
    /// `oci-archive:FILE[:REF]`: a tar of an OCI layout.
    OciArchive(PathRef),
    /// `docker-archive:FILE[:REF]`: a `docker save` tarball.
    DockerArchive(PathRef),
    /// `docker-daemon:NAME[:TAG|@DIGEST]`: an image of the local docker
    /// daemon, read through its Engine API.
    DockerDaemon(DaemonImage),
    /// `docker://REFERENCE`: an image in a registry (issue 18's).
    Registry(String),
    /// `-`: an OCI archive or a docker save read from standard input.
    Stdin,
}

/// A path and the reference choosing an image in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathRef {
    /// The file or directory.
    pub(crate) path: PathBuf,
    /// The image it holds to read (`REF`), if given.
    pub(crate) reference: Option<String>,
}

/// An image of the docker daemon, as `docker save` names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DaemonImage {
    /// A name with a tag (`:latest` when none was given) or a digest.
    Reference(Reference),
    /// An image ID: its config digest.
    Id(Sha256Digest),
}

impl DaemonImage {
    /// How the Engine API names it (`docker save NAME`).
    pub(crate) fn api_name(&self) -> String {
        match self {
            DaemonImage::Reference(r) => r.to_string(),
            DaemonImage::Id(id) => id.to_string(),
        }
    }
}

impl std::fmt::Display for DaemonImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonImage::Reference(r) => f.write_str(&r.familiar()),
            DaemonImage::Id(id) => write!(f, "{id}"),
        }
    }
}

impl Input {
    /// Parses the INPUT argument. A known transport prefix is that
    /// transport (a path that starts with one is written `./oci:…`); an
    /// unknown `xyz:` prefix is an error unless some prefix of the input
    /// exists as a path.
    pub(crate) fn parse(input: &str) -> Result<Input, InputError> {
        if input == "-" {
            return Ok(Input::Stdin);
        }
        if let Some(rest) = input.strip_prefix("docker://") {
            return match rest {
                "" => Err(InputError::Empty {
                    input: input.to_owned(),
                    what: "an image reference",
                }),
                _ => Ok(Input::Registry(rest.to_owned())),
            };
        }
        let Some((transport, rest)) = input.split_once(':') else {
            return Ok(Input::Path(input.to_owned()));
        };
        let path_ref = || path_ref(input, rest);
        match transport {
            "oci" => Ok(Input::OciLayout(path_ref()?)),
            "oci-archive" => Ok(Input::OciArchive(path_ref()?)),
            "docker-archive" => Ok(Input::DockerArchive(path_ref()?)),
            "docker-daemon" => daemon_image(input, rest).map(Input::DockerDaemon),
            _ if looks_like_transport(transport) && !some_prefix_exists(input) => {
                Err(InputError::UnknownTransport {
                    input: input.to_owned(),
                    transport: transport.to_owned(),
                })
            }
            _ => Ok(Input::Path(input.to_owned())),
        }
    }
}

/// `PATH[:REF]` after a transport: the whole rest if it exists, else split
/// at the first `:` whose left part exists (skopeo splits at the first
/// `:`; this also reads a path holding one), else the rest as the path.
fn path_ref(input: &str, rest: &str) -> Result<PathRef, InputError> {
    if rest.is_empty() {
        return Err(InputError::Empty {
            input: input.to_owned(),
            what: "a path",
        });
    }
    let whole = || PathRef {
        path: PathBuf::from(rest),
        reference: None,
    };
    if exists(rest) {
        return Ok(whole());
    }
    for (i, _) in rest.match_indices(':') {
        let (path, reference) = (&rest[..i], &rest[i + 1..]);
        if !path.is_empty() && exists(path) {
            return Ok(PathRef {
                path: PathBuf::from(path),
                reference: Some(reference.to_owned()).filter(|r| !r.is_empty()),
            });
        }
    }
    Ok(whole())
}

/// `NAME[:TAG|@DIGEST]` (`:latest` when neither) or an image ID `sha256:…`.
fn daemon_image(input: &str, rest: &str) -> Result<DaemonImage, InputError> {
    if rest.is_empty() {
        return Err(InputError::Empty {
            input: input.to_owned(),
            what: "an image name",
        });
    }
    if rest.starts_with("sha256:") {
        return Sha256Digest::parse(rest).map(DaemonImage::Id).map_err(|e| {
            InputError::DaemonName {
                input: input.to_owned(),
                message: e.to_string(),
            }
        });
    }
    Reference::parse(rest)
        .map(|r| DaemonImage::Reference(r.with_default_tag()))
        .map_err(|e| InputError::DaemonName {
            input: input.to_owned(),
            message: e.to_string(),
        })
}

/// A transport name: a lowercase word of letters, digits, `-` and `_`
/// (not a Windows-style drive letter, nor anything with a `/` or `.`).
fn looks_like_transport(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Whether the input, or a part of it before a `:`, exists as a path.
fn some_prefix_exists(input: &str) -> bool {
    exists(input)
        || input
            .match_indices(':')
            .any(|(i, _)| i > 0 && exists(&input[..i]))
}

fn exists(path: &str) -> bool {
    std::path::Path::new(path).symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::error::TRANSPORTS;

    fn path_ref(path: &str, reference: Option<&str>) -> PathRef {
        PathRef {
            path: PathBuf::from(path),
            reference: reference.map(str::to_owned),
        }
    }

    #[test]
    fn transports() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lay:out");
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.to_str().unwrap();
        assert_eq!(Input::parse("-").unwrap(), Input::Stdin);
        assert_eq!(
            Input::parse(&format!("oci:{dir}")).unwrap(),
            Input::OciLayout(path_ref(dir, None))
        );
        assert_eq!(
            Input::parse(&format!("oci:{dir}:app:1")).unwrap(),
            Input::OciLayout(path_ref(dir, Some("app:1")))
        );
        assert_eq!(
            Input::parse("oci-archive:/nope/x.tar:v1").unwrap(),
            Input::OciArchive(path_ref("/nope/x.tar:v1", None))
        );
        assert_eq!(
            Input::parse("docker-archive:save.tar").unwrap(),
            Input::DockerArchive(path_ref("save.tar", None))
        );
        assert_eq!(
            Input::parse("docker://localhost:5000/app:1").unwrap(),
            Input::Registry("localhost:5000/app:1".to_owned())
        );
        assert_eq!(
            Input::parse("some/dir:ref").unwrap(),
            Input::Path("some/dir:ref".to_owned())
        );
        assert_eq!(
            Input::parse("C:ref").unwrap(),
            Input::Path("C:ref".to_owned())
        );
    }

    #[test]
    fn daemon_names() {
        let parsed = |s: &str| match Input::parse(s).unwrap() {
            Input::DockerDaemon(image) => (image.api_name(), image.to_string()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parsed("docker-daemon:app"),
            (
                "docker.io/library/app:latest".to_owned(),
                "app:latest".to_owned()
            )
        );
        assert_eq!(
            parsed("docker-daemon:localhost:5000/a/b:2").0,
            "localhost:5000/a/b:2"
        );
        let id = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parsed(&format!("docker-daemon:{id}")).0, id);
        assert_eq!(
            parsed(&format!("docker-daemon:app@{id}")).0,
            format!("docker.io/library/app@{id}")
        );
    }

    #[test]
    fn bad_inputs_are_usage_errors() {
        for (input, message) in [
            (
                "xyz:thing",
                format!("input \"xyz:thing\": unknown transport \"xyz:\"; use {TRANSPORTS}"),
            ),
            ("oci:", "input \"oci:\": expected a path after the transport".to_owned()),
            (
                "docker-daemon:",
                "input \"docker-daemon:\": expected an image name after the transport".to_owned(),
            ),
            (
                "docker://",
                "input \"docker://\": expected an image reference after the transport".to_owned(),
            ),
            (
                "docker-daemon:App",
                "input \"docker-daemon:App\": \"App\": invalid repository path component \"App\" (lowercase letters, digits and separators only)".to_owned(),
            ),
            (
                "docker-daemon:sha256:abc",
                "input \"docker-daemon:sha256:abc\": \"sha256:abc\" is not a sha256 digest (sha256: and 64 lowercase hex digits)".to_owned(),
            ),
        ] {
            let e = Input::parse(input).unwrap_err();
            assert!(e.is_usage(), "{input}");
            assert_eq!(e.to_string(), message);
        }
    }
}
