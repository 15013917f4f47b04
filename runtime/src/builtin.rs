//! The built-in components, compiled from `guests/` for `wasm32-wasip2` by
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
    Builtin {
        name: REGISTRY,
        wasm: generated::REGISTRY,
    },
];

/// The registry push exporter's name (`type=registry`, alias `type=image`).
pub const REGISTRY: &str = "registry";

/// BuildKit's `type=image`: the registry exporter (`push=true` required).
pub const IMAGE_ALIAS: &str = "image";

/// The built-in exporter called `name` (`image` is the registry exporter).
pub fn exporter(name: &str) -> Option<Builtin> {
    let name = if name == IMAGE_ALIAS { REGISTRY } else { name };
    EXPORTERS.iter().copied().find(|b| b.name == name)
}
