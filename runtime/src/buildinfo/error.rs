//! Why build info could not be made: an input given on the command line is
//! wrong ([`InputError`]), or a document of the image could not be read or
//! rewritten ([`ImageError`], [`DocumentError`]).
//!
//! `Display` is one line, as it was when these were strings; the causes
//! are kept as typed sources.

use std::fmt;
use std::path::PathBuf;

/// A build-info input of the command line is wrong: `--build-sources`,
/// `--attr`, `--attest` or `SOURCE_DATE_EPOCH`.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The `--build-sources` file could not be read or is invalid.
    #[error("--build-sources {}: {source}", path.display())]
    SourcesFile {
        /// The file as given.
        path: PathBuf,
        /// What is wrong.
        source: SourcesError,
    },
    /// An `--attr` argument is malformed.
    #[error("--attr {attr:?}: {problem}")]
    Attr {
        /// The argument as given.
        attr: String,
        /// What is wrong.
        problem: AttrProblem,
    },
    /// An `--attest` value is malformed or asks for something unsupported.
    #[error("--attest {value:?}: {problem}")]
    Attest {
        /// The value as given.
        value: String,
        /// What is wrong.
        problem: AttestProblem,
    },
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={0:?}: expected a number of seconds since 1970")]
    Epoch(String),
}

/// Why a `--build-sources` file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    /// Reading the file failed.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// The file is not JSON.
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The file is JSON but not a list.
    #[error(
        "expected a JSON list of sources ([{{\"type\":\"image|git|http\",\"ref\":...,\"pin\":...}}])"
    )]
    NotAList,
    /// An entry does not have the shape of a source.
    #[error("source {index}: {source}")]
    Entry {
        /// The entry's position (from 0).
        index: usize,
        /// Why it does not decode.
        source: serde_json::Error,
    },
    /// An entry's type is not one outport knows.
    #[error("source {index}: type {kind:?} is not one of image, git, http")]
    UnknownType {
        /// The entry's position (from 0).
        index: usize,
        /// The type given.
        kind: String,
    },
    /// An entry's `ref` is empty.
    #[error("source {index}: \"ref\" is empty")]
    EmptyRef {
        /// The entry's position (from 0).
        index: usize,
    },
}

/// Why an `--attr` argument is malformed.
#[derive(Debug, thiserror::Error)]
pub enum AttrProblem {
    /// There is no `=`.
    #[error("expected KEY=VALUE")]
    NotKeyValue,
    /// The key is empty.
    #[error("the key is empty")]
    EmptyKey,
}

/// Why an `--attest` value is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AttestProblem {
    /// A field after the first is not `KEY=VALUE`.
    #[error("{0:?} is not KEY=VALUE")]
    NotKeyValue(String),
    /// `mode=` is not `min` or `max`.
    #[error("mode={0:?}: expected min or max")]
    Mode(String),
    /// `disabled=` is not `true` or `false`.
    #[error("disabled={0:?}: expected true or false")]
    Disabled(String),
    /// A field is unknown or given twice.
    #[error(
        "unknown or repeated field {0:?} (known: type=provenance, mode=min|max, builder-id=ID, disabled=true|false)"
    )]
    UnknownField(String),
    /// No `type=`.
    #[error("no type (expected type=provenance)")]
    NoType,
    /// A type other than provenance.
    #[error("attestation type {0:?} is not supported (only provenance)")]
    Unsupported(String),
    /// Provenance is asked for by more than one `--attest`.
    #[error("provenance is asked for more than once")]
    Repeated,
}

/// Why a config's build-info value does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// It is not base64.
    #[error("not base64: {0}")]
    Base64(#[source] base64::DecodeError),
    /// It is base64, but not of a build-info document.
    #[error("not build-info JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// What went wrong computing an image's build info or attestations: the
/// image, the step and the document concerned.
#[derive(Debug, thiserror::Error)]
#[error("{image}: {step}: {source}")]
pub struct ImageError {
    /// The image's name.
    pub image: String,
    /// What was being made.
    pub step: Step,
    /// Which document failed and why.
    pub source: DocumentError,
}

/// What was being made when an image's document failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The build-info field of each config.
    BuildInfo,
    /// Provenance attestations.
    Provenance,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Step::BuildInfo => "build info",
            Step::Provenance => "provenance",
        })
    }
}

/// Which kind of document of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// An image index.
    Index,
    /// An image manifest.
    Manifest,
    /// An image config.
    Config,
}

impl Document {
    /// The kind of document a descriptor's `media_type` points at.
    pub fn of(media_type: &str) -> Document {
        use outport_oci::media;
        if media::is_index(media_type) {
            Document::Index
        } else if media::is_config(media_type) {
            Document::Config
        } else {
            Document::Manifest
        }
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Document::Index => "index",
            Document::Manifest => "manifest",
            Document::Config => "config",
        })
    }
}

/// A document of an image could not be read or rewritten.
#[derive(Debug)]
pub struct DocumentError {
    /// Which document.
    pub document: Document,
    /// Its digest.
    pub digest: String,
    /// Why.
    pub cause: Cause,
}

impl DocumentError {
    /// The error `cause` of the `document` with `digest`.
    pub fn new(document: Document, digest: &str, cause: impl Into<Cause>) -> DocumentError {
        DocumentError {
            document,
            digest: digest.to_string(),
            cause: cause.into(),
        }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Self {
            document,
            digest,
            cause,
        } = self;
        match cause {
            Cause::Read(e) => write!(f, "{e}"),
            Cause::NotInImage => write!(f, "blob {digest} is not in the image"),
            Cause::TooDeep | Cause::Digest(_) => write!(f, "{digest}: {cause}"),
            _ => write!(f, "{document} {digest}: {cause}"),
        }
    }
}

impl std::error::Error for DocumentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// Why a document of an image could not be read or rewritten.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// Its blob is not in the image.
    #[error("not in the image")]
    NotInImage,
    /// Reading its blob failed.
    #[error("{0}")]
    Read(#[source] Box<outport_image::Error>),
    /// Indexes hold indexes too many levels deep.
    #[error("indexes nested too deeply")]
    TooDeep,
    /// It is not the JSON expected, or could not be re-encoded.
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    /// Its new digest is not a valid digest.
    #[error("{0}")]
    Digest(#[source] Box<oci_spec::OciSpecError>),
    /// The config's build-info value (`key`) is not a JSON string.
    #[error("{key} is not a string")]
    NotAString {
        /// The config key.
        key: &'static str,
    },
    /// The config's build-info value (`key`) does not decode.
    #[error("{key}: {source}")]
    BuildInfo {
        /// The config key.
        key: &'static str,
        /// Why.
        source: DecodeError,
    },
}

impl From<serde_json::Error> for Cause {
    fn from(e: serde_json::Error) -> Cause {
        Cause::Json(e)
    }
}

impl From<outport_image::Error> for Cause {
    fn from(e: outport_image::Error) -> Cause {
        Cause::Read(Box::new(e))
    }
}
