//! Helpers shared by the end-to-end tests: running `outport`, `skopeo`,
//! `umoci` and the sample script; reading, mutating and packing OCI layouts;
//! building a legacy `docker save` tarball; checking that a failed export left
//! nothing behind.
//!
//! By section: `paths.rs`, `json.rs` (digests and JSON), `run.rs` (running
//! outport), `tools.rs` (skopeo, umoci, python), `dirs.rs` (directories and
//! copies of the sample), `layout.rs` (reading OCI layouts: `LayoutFiles`),
//! `layout_edit.rs` (changing them on disk: `Layout`), `tarballs.rs`
//! (packing, cutting, `docker save`); `relay_core.rs` (the TCP relay every
//! test relay is: a hook per relay), `relay.rs` and `blob_relay.rs` (the
//! relays), `flaky.rs` (a relay that fails requests, drops connections,
//! rewrites a header).
#![allow(dead_code)] // each test module uses its own subset

pub mod blob_relay;
pub mod flaky;
pub mod relay;
pub mod relay_core;

mod dirs;
mod json;
mod layout;
mod layout_edit;
mod paths;
mod run;
mod tarballs;
mod tools;

pub use dirs::*;
pub use json::*;
pub use layout::*;
pub use layout_edit::*;
pub use paths::*;
pub use run::*;
pub use tarballs::*;
pub use tools::*;

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_LAYER_PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

/// The sample's one image: its `index.json` entry's names.
pub const SAMPLE_TAG: &str = "latest";
pub const SAMPLE_NAME: &str = "docker.io/outport/sample:latest";
