//! Host bindings for the `outport:exporter` WIT package, generated in one
//! place. WASI types (streams, filesystem descriptors) are those of
//! `wasmtime-wasi`, so a guest's file or stream handle can be passed to our
//! own functions.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "exporter",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wasi": wasmtime_wasi::p2::bindings,
        "outport:exporter/image.blob": crate::host::image::BlobHandle,
    },
});

pub use self::outport::exporter::{files, host, image, types};

use wasmtime::component::{HasSelf, Linker};

use crate::instance::state::InstanceState;

/// Adds outport's own interfaces (`types`, `image`, `files`, `host`) to a linker
/// that already has WASI.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    image::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    files::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl types::Host for InstanceState {}

/// Host bindings for the `cache-backend` world. Its imports are the same
/// interfaces as the exporter world's, so they map onto the modules above
/// and share their host implementations.
pub mod cache {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "cache-backend",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi": wasmtime_wasi::p2::bindings,
            "outport:exporter/types": crate::host::bindings::types,
            "outport:exporter/image": crate::host::bindings::image,
            "outport:exporter/host": crate::host::bindings::host,
            "outport:exporter/files": crate::host::bindings::files,
        },
    });
}
