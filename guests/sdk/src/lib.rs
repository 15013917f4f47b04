//! The SDK for writing outport exporters in Rust.
//!
//! An exporter is a WebAssembly component (`wasm32-wasip2`, a `cdylib`
//! crate) implementing the world `outport:exporter/exporter@0.1.3` of the
//! WIT contract in `wit/`. This crate holds the generated bindings and the
//! pieces every exporter needs, so an exporter is its own logic only:
//!
//! - [`bindings`]: the generated bindings; implement [`Guest`] and call
//!   [`export!`] once. The contract's types are re-exported here
//!   ([`Error`], [`Request`], [`ResponseEntry`], …).
//! - [`options`]: one table of [`OptionSpec`]s answers `describe` and checks
//!   `validate`; [`Parsed`] reads typed values (bool, string, repeatable,
//!   prefixed keys, image names) with errors naming the option.
//! - [`walk`]: an index's image manifests with their platforms
//!   ([`walk::image_manifests`], [`walk::find_platform`]), a manifest's
//!   config and layers ([`walk::read_manifest`]).
//! - [`plan`]: every blob reachable from a root, each once, with annotation
//!   rewrites, layers converted by the host and media types changed
//!   ([`Plan`], [`Rewrites`]); [`image_options`]: the options that drive
//!   them (`compression`, `oci-mediatypes`, `rewrite-timestamp`,
//!   `annotation*`), shared by the image exporters; [`layout`] turns it into an OCI
//!   image layout ([`Layout`]) written as a directory or into a tar.
//! - [`dest`]: the granted destination (the preopened directory, files,
//!   streams); [`TarWriter`] writes a tar into a file, blob bytes copied by
//!   the host (`copy-to-file`), never through guest memory.
//! - [`rootfs`]: the image's root filesystem (layers applied, whiteouts
//!   honoured), written as a tar stream or unpacked into a directory: the
//!   `tar` and `local` exporters.
//! - [`log`]: log lines and progress; [`response`]: response keys
//!   (`containerimage.descriptor` in base64, …); [`reference`](mod@reference): image names
//!   normalized as BuildKit and docker do; [`platform`]: `os/arch/variant`.
//!
//! A minimal exporter, writing the image as an OCI layout tarball:
//!
//! ```ignore
//! use outport_exporter::options::{OptionSpec, Parsed, describe};
//! use outport_exporter::{
//!     ComponentInfo, Error, Guest, Layout, OutputKind, Plan, Request, ResponseEntry, Rewrites,
//!     TarWriter, dest, response,
//! };
//!
//! const OPTIONS: &[OptionSpec] = &[OptionSpec::repeatable("name", "image name")];
//!
//! struct Hello;
//!
//! impl Guest for Hello {
//!     fn describe() -> ComponentInfo {
//!         ComponentInfo {
//!             name: "hello".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             summary: "write the image as an OCI layout tarball".into(),
//!             options: describe(OPTIONS),
//!         }
//!     }
//!
//!     fn validate(options: Vec<(String, String)>) -> Result<OutputKind, Error> {
//!         Parsed::new("hello", OPTIONS, &options)?.image_names("name")?;
//!         Ok(OutputKind::File)
//!     }
//!
//!     fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
//!         let names = Parsed::new("hello", OPTIONS, &request.options)?.image_names("name")?;
//!         let dest = dest::granted(request.destination)?;
//!         let plan = Plan::image(&Rewrites::default())?;
//!         let (name, file) = dest::open_file(&dest, "hello")?;
//!         let mut tar = TarWriter::new(file, &name);
//!         Layout::new(&plan, &names)?.write_tar(&mut tar, &[])?;
//!         tar.finish()?;
//!         response::image_entries(&plan, &names)
//!     }
//! }
//!
//! outport_exporter::export!(Hello);
//! ```
//!
//! A cache backend (world `outport:exporter/cache-backend`) implements
//! [`bindings::cache::Guest`] and calls [`export_cache_backend!`]; the same
//! helpers serve it (the cache comes through the `image` interface), and
//! [`cache`] adds BuildKit's cache layout.
//!
//! A guest crate depends on this one only (not on `wit-bindgen`).

#![warn(missing_docs)]

// Lets the generated code name this crate the same way inside and outside it.
extern crate self as outport_exporter;

pub mod azblob;
pub mod bindings;
pub mod cache;
pub mod dest;
pub mod distribution;
pub mod errors;
mod http;
pub mod image_options;
pub mod layout;
pub mod log;
pub mod object_cache;
pub mod options;
pub mod plan;
pub mod platform;
pub mod response;
pub mod rootfs;
pub mod s3;
pub mod tar;
mod transfer;
pub mod walk;

/// The OCI vocabulary the host shares: [`oci::Sha256Digest`], typed
/// documents ([`oci::document`]), media types and references.
pub use outport_oci as oci;
/// Media types of image documents and layers, OCI and docker (from
/// `outport-oci`, which the host shares).
pub use outport_oci::media;
/// Image references by docker's rules: [`reference::normalize`],
/// [`reference::familiar`] (from `outport-oci`, which the host shares).
pub use outport_oci::reference;

pub use bindings::Guest;
pub use bindings::outport::exporter::image::{self, Blob};
pub use bindings::outport::exporter::types::{
    ComponentInfo, Descriptor, Destination, Error, OptionInfo, Options, OutputKind, Request,
    ResponseEntry,
};
pub use image_options::ImageOptions;
pub use layout::Layout;
pub use options::{OptionSpec, Parsed};
pub use plan::{Plan, Rewrites};
pub use platform::Platform;
pub use tar::TarWriter;

/// Exports `$ty` (a type implementing [`Guest`]) as the component's
/// implementation of the `exporter` world. Call it once, in the guest crate.
pub use bindings::export;

/// Exports `$ty` (a type implementing [`bindings::cache::Guest`]) as the
/// component's implementation of the `cache-backend` world.
pub use bindings::cache::export_cache_backend;
pub use bindings::outport::exporter::types::CacheOperation;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
