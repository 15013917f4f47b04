//! The built-in components (exporters and cache backends), compiled from `guests/` for `wasm32-wasip2` by
//! `build.rs` and embedded in the binary.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/builtin_guests.rs"));
}

/// A built-in component.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// Its `type=` name.
    pub name: &'static str,
    /// Its component bytes.
    pub wasm: &'static [u8],
}

/// Every built-in exporter, by `type=` name.
pub const EXPORTERS: &[Builtin] = &[
    Builtin {
        name: "oci",
        wasm: generated::OCI,
    },
    Builtin {
        name: "docker",
        wasm: generated::DOCKER,
    },
    Builtin {
        name: "tar",
        wasm: generated::TAR,
    },
    Builtin {
        name: "local",
        wasm: generated::LOCAL,
    },
];

/// Every built-in cache backend, by `type=` name.
pub const CACHE_BACKENDS: &[Builtin] = &[Builtin {
    name: "local",
    wasm: generated::CACHE_LOCAL,
}];
