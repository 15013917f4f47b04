//! The OCI vocabulary outport's host (`outport`, `outport-image`) and its
//! guests (`outport-exporter`, built for `wasm32-wasip2`) share, so both
//! sides read images by the same rules:
//!
//! - [`digest`]: the validated [`Sha256Digest`] (`sha256:` and 64 lowercase
//!   hex digits), the only form a blob path is ever made from;
//! - [`media`]: the media types of indexes, manifests, configs and layers,
//!   OCI and docker schema 2, with the lists and tests on them and the
//!   conversion between the two families;
//! - [`reference`]: image references by docker's rules
//!   ([`Reference::parse`]: `alpine` is `docker.io/library/alpine`, tag
//!   `latest` when there is neither tag nor digest) and back to the short
//!   form docker shows ([`reference::familiar`]);
//! - [`document`]: typed, read-only views of an index, a manifest and an
//!   image config, for code that walks them (code that rewrites a document
//!   keeps its JSON as it is, so unknown fields and digests survive).
//!
//! Pure Rust without I/O; the `oci-spec` feature adds conversions to and
//! from `oci_spec`'s digest for the host.

pub mod digest;
pub mod document;
pub mod media;
pub mod reference;

pub use digest::{DigestError, Sha256Digest};
pub use reference::{Reference, ReferenceError};
