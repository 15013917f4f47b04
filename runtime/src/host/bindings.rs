//! Host bindings for the `outport:exporter` WIT package, generated in one
//! place, and the one error type the generator is told about.
//!
//! WASI types (streams, filesystem descriptors) are those of
//! `wasmtime-wasi`, so a guest's file or stream handle can be passed to our
//! own functions. A host function whose WIT result is `result<_, error>`
//! returns [`HostError`]: the guest-visible `error`, or a trap, so that it
//! can use `?` on both (wasmtime's trappable-error pattern).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "exporter",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "outport:exporter/types.error" => HostError,
    },
    with: {
        "wasi": wasmtime_wasi::p2::bindings,
        "outport:exporter/image.blob": crate::host::uncompressed::BlobResource,
    },
});

pub use self::outport::exporter::{files, host, image, types};

/// What a host function fails with: an `error` the guest gets as its
/// result, or a trap that ends the instance.
#[derive(Debug)]
pub enum HostError {
    /// Returned to the guest.
    Guest(types::Error),
    /// Ends the instance (a host failure, a full resource table).
    Trap(wasmtime::Error),
}

impl HostError {
    /// The guest's error, or the trap as an `Err`.
    pub fn into_guest(self) -> wasmtime::Result<types::Error> {
        match self {
            HostError::Guest(e) => Ok(e),
            HostError::Trap(e) => Err(e),
        }
    }
}

impl From<types::Error> for HostError {
    fn from(e: types::Error) -> Self {
        HostError::Guest(e)
    }
}

impl From<wasmtime::Error> for HostError {
    fn from(e: wasmtime::Error) -> Self {
        HostError::Trap(e)
    }
}

impl From<wasmtime::component::ResourceTableError> for HostError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        HostError::Trap(e.into())
    }
}

impl From<tokio::task::JoinError> for HostError {
    fn from(e: tokio::task::JoinError) -> Self {
        HostError::Trap(e.into())
    }
}

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
