//! Builds the built-in guests (`guests/`, their own cargo workspace) for
//! `wasm32-wasip2` and generates `builtin_guests.rs`, which embeds each
//! component with `include_bytes!` (see `outport-guest-build`).

use std::path::Path;

use outport_guest_build::{Embed, Guest};

/// The built-in guests.
const GUESTS: &[Guest] = &[
    Guest {
        constant: "OCI",
        package: "outport-guest-oci",
    },
    Guest {
        constant: "DOCKER",
        package: "outport-guest-docker",
    },
    Guest {
        constant: "TAR",
        package: "outport-guest-tar",
    },
    Guest {
        constant: "LOCAL",
        package: "outport-guest-local",
    },
    Guest {
        constant: "REGISTRY",
        package: "outport-guest-registry",
    },
    Guest {
        constant: "CACHE_LOCAL",
        package: "outport-guest-cache-local",
    },
    Guest {
        constant: "CACHE_S3",
        package: "outport-guest-cache-s3",
    },
    Guest {
        constant: "CACHE_REGISTRY",
        package: "outport-guest-cache-registry",
    },
    Guest {
        constant: "CACHE_AZBLOB",
        package: "outport-guest-cache-azblob",
    },
];

fn main() {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo");
    let repo = Path::new(&manifest_dir)
        .parent()
        .expect("runtime/ has a parent");
    outport_guest_build::build(
        &repo.join("guests"),
        // The SDK depends on runtime/oci (outport-oci) by path.
        &[&repo.join("wit"), &repo.join("runtime/oci")],
        GUESTS,
        Embed::Bytes,
        "builtin_guests.rs",
    );
}
