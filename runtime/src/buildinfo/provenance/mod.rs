//! SLSA provenance attestations (`--attest provenance[,mode=min|max]`), laid
//! out as BuildKit lays them out, so that tools reading BuildKit's read
//! outport's.
//!
//! For each image manifest of an output's image (after build info), the
//! host writes an in-toto Statement v1 whose subject is that manifest and
//! whose predicate is SLSA provenance v1, built from the same sources as
//! the build info ([`super::config::Outcome::full`]). It goes into an
//! *attestation manifest*: an OCI artifact (`artifactType`
//! `application/vnd.docker.attestation.manifest.v1+json`, the empty config
//! `application/vnd.oci.empty.v1+json`, a `subject` naming the manifest;
//! BuildKit's default) or, with `oci-artifact=false`, an OCI image manifest
//! with an `unknown/unknown` config, and one `application/vnd.in-toto+json`
//! layer, listed after the
//! image manifests of the index that holds the subject, with platform
//! `unknown/unknown` and the annotations `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest: <subject>`. A
//! single-platform image (the root is a manifest) becomes an index of the
//! manifest and its attestation, as BuildKit does when it attests. Every
//! other blob is shared with the image attested; the input's own
//! provenance-only attestation manifests of an attested manifest are
//! replaced (their subjects no longer match once the manifest changed),
//! other attestations (SBOMs) are kept.
//!
//! The files: `request.rs` (what `--attest` asked for, timestamps),
//! `statement.rs` (the in-toto statement and its SLSA predicate),
//! `dependencies.rs` (sources as SLSA resource descriptors, package URLs)
//! and `attach.rs` (attestation manifests added to a copy of the image).

mod attach;
mod dependencies;
mod request;
mod statement;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use super::sources::BuildInfo;

pub use attach::attach;
pub use dependencies::{Dependency, dependencies, image_purl};
pub use request::{Mode, Request, rfc3339};

/// Output option: `false` leaves that output without attestations.
pub const OPT_ATTEST: &str = "attest";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// BuildKit's build type, which tools reading BuildKit's provenance expect.
pub const BUILD_TYPE: &str = "https://mobyproject.org/buildkit@v1";
/// The default `runDetails.builder.id`.
pub const BUILDER_ID: &str = "outport";
/// Media type of the attestation layer.
pub const MT_IN_TOTO: &str = outport_oci::media::IN_TOTO;
/// Annotation of the attestation layer naming its predicate type.
pub const ANN_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// `vnd.docker.reference.type` of an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = outport_oci::document::ATTESTATION_MANIFEST;
/// `artifactType` of an attestation manifest written as an OCI artifact.
pub const ATTESTATION_ARTIFACT_TYPE: &str = outport_oci::document::ATTESTATION_ARTIFACT_TYPE;
/// Output option: `false` writes attestation manifests as image manifests
/// with an `unknown/unknown` config instead of OCI artifacts.
pub const OPT_OCI_ARTIFACT: &str = "oci-artifact";

/// What one output's attestations are made of.
pub struct Attach<'a> {
    /// The run's request.
    pub request: &'a Request,
    /// The output's image names (`name=`), normalised; none gives the
    /// subject name `_`, as BuildKit.
    pub names: &'a [String],
    /// The complete build info of each image manifest, by digest.
    pub infos: &'a BTreeMap<String, BuildInfo>,
    /// The run's invocation ID.
    pub invocation_id: &'a str,
    /// When the attestations are made (seconds since the epoch).
    pub finished: i64,
    /// Attestation manifests as OCI artifacts (`artifactType`, the empty
    /// config, a `subject`), BuildKit's default since v0.32.
    pub oci_artifact: bool,
}
