//! The built-in components (exporters and cache backends), compiled from `guests/` for `wasm32-wasip2` by
//! `build.rs` and embedded in the binary.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/builtin_guests.rs"));
}

use crate::sandbox::reach::Reach;

/// A built-in component.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// Its `type=` name.
    pub name: &'static str,
    /// Its component bytes.
    pub wasm: &'static [u8],
    /// What it may reach when the policy does not say.
    pub reach: Reach,
}

/// Every built-in exporter, by `type=` name.
pub const EXPORTERS: &[Builtin] = &[
    Builtin {
        name: "oci",
        wasm: generated::OCI,
        reach: Reach::Nothing,
    },
    Builtin {
        name: "docker",
        wasm: generated::DOCKER,
        reach: Reach::Nothing,
    },
    Builtin {
        name: "tar",
        wasm: generated::TAR,
        reach: Reach::Nothing,
    },
    Builtin {
        name: "local",
        wasm: generated::LOCAL,
        reach: Reach::Nothing,
    },
    Builtin {
        name: REGISTRY,
        wasm: generated::REGISTRY,
        reach: Reach::ImageNames,
    },
];

/// Every built-in cache backend, by `type=` name.
pub const CACHE_BACKENDS: &[Builtin] = &[
    Builtin {
        name: "local",
        wasm: generated::CACHE_LOCAL,
        reach: Reach::Nothing,
    },
    Builtin {
        name: crate::cache::s3::NAME,
        wasm: generated::CACHE_S3,
        reach: Reach::S3Endpoint,
    },
    Builtin {
        name: REGISTRY,
        wasm: generated::CACHE_REGISTRY,
        reach: Reach::CacheRef,
    },
    Builtin {
        name: crate::cache::azblob::NAME,
        wasm: generated::CACHE_AZBLOB,
        reach: Reach::AzureAccount,
    },
];

/// The registry push exporter's and the registry cache backend's name
/// (`type=registry`; for the exporter also `type=image`).
pub const REGISTRY: &str = "registry";

/// BuildKit's `type=image`: the registry exporter (`push=true` required).
pub const IMAGE_ALIAS: &str = "image";

/// Other names of built-in exporters: `(alias, name)`.
pub const EXPORTER_ALIASES: &[(&str, &str)] = &[(IMAGE_ALIAS, REGISTRY)];

/// The built-in of `builtins` called `name`, or whose name `name` is an
/// alias of (per `aliases`).
pub fn find(builtins: &[Builtin], aliases: &[(&str, &str)], name: &str) -> Option<Builtin> {
    let name = aliases
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, target)| *target);
    builtins.iter().copied().find(|b| b.name == name)
}
