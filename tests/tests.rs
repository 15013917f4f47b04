//! End-to-end tests: run the `outport` binary on the sample image (and on
//! broken copies of it) and check what it writes with tools nobody here
//! wrote: `skopeo` and `umoci` (installed by `scripts/install-test-deps`;
//! a test that needs one fails when it is missing).
//!
//! Every test works in its own temporary directory and never writes into the
//! repository.

mod common;

mod attestation_forms;
mod authors;
mod bad_input;
mod buildinfo;
mod cache_azblob;
mod cache_local;
mod cache_registry;
mod cache_s3;
mod compile_cache;
mod crash_safety;
mod daemon;
mod daemon_load;
mod daemon_stream;
mod docs_layout;
mod docs_links;
mod export_docker;
mod export_oci;
mod export_registry;
mod export_rootfs;
mod image_options;
mod input_registry;
mod inputs;
mod instances;
mod layer_views;
mod library_api;
mod plugin_ref;
mod plugins;
mod provenance;
mod python_exporter;
mod sample_image;
mod sandbox;
