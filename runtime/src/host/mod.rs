//! Host implementations of the `outport:exporter` interfaces, one file per
//! interface of `wit/` (as wasmtime's `crates/wasi/src/p2/host/` does),
//! each working on its own part of an instance's state through a view:
//!
//! | interface | file | works on |
//! |---|---|---|
//! | `image` (and its `blob` resource) | `image.rs`; streams in `blob_stream.rs`, damage in `damaged.rs`, conversions and uncompressed views in `uncompressed.rs` | [`image::ImageCtx`] + the resource table |
//! | `files` | `files.rs` | the resource table (the guest's descriptors) |
//! | `host` (log, progress) | `host.rs` | [`host::ReportCtx`] |
//! | `types` | `types.rs` | conversions to WIT types; errors to the guest |
//! | `wasi:cli` stdout/stderr | `stdio.rs` | the instance's [`stdio::GuestLog`] |
//! | `wasi:http` | `http.rs` | [`http::HttpAccess`] (allow-list, credentials) |
//!
//! `bindings.rs` is the generated code; [`add_to_linker`] links the
//! interfaces for any store data that gives the views ([`HostView`]).

use wasmtime::component::{HasData, Linker};

pub mod bindings;
mod blob_stream;
mod damaged;
pub mod files;
// The WIT interface is named `host`, as is this folder.
#[allow(clippy::module_inception)]
pub mod host;
pub mod http;
pub mod image;
pub(crate) mod platform;
pub mod stdio;
mod types;
mod uncompressed;

/// Store data that can give each interface its view.
pub trait HostView: Send {
    /// The `image` interface's view.
    fn image(&mut self) -> image::ImageView<'_>;
    /// The `files` interface's view.
    fn files(&mut self) -> files::FilesView<'_>;
    /// The `host` interface's context.
    fn report(&mut self) -> &mut host::ReportCtx;
}

struct ImageData;
impl HasData for ImageData {
    type Data<'a> = image::ImageView<'a>;
}

struct FilesData;
impl HasData for FilesData {
    type Data<'a> = files::FilesView<'a>;
}

struct ReportData;
impl HasData for ReportData {
    type Data<'a> = &'a mut host::ReportCtx;
}

/// Adds outport's own interfaces (`types`, `image`, `files`, `host`) to a
/// linker that already has WASI.
pub fn add_to_linker<T: HostView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::types::add_to_linker::<T, ReportData>(linker, T::report)?;
    bindings::image::add_to_linker::<T, ImageData>(linker, T::image)?;
    bindings::files::add_to_linker::<T, FilesData>(linker, T::files)?;
    bindings::host::add_to_linker::<T, ReportData>(linker, T::report)
}
