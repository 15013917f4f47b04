//! Builds the test guests in `guests/` and names each component's path.

use std::path::Path;

use outport_guest_build::{Embed, Guest};

const GUESTS: &[Guest] = &[
    Guest {
        constant: "MISBEHAVE",
        package: "outport-test-misbehave",
    },
    Guest {
        constant: "DIALER",
        package: "outport-test-dialer",
    },
    Guest {
        constant: "FETCHER",
        package: "outport-test-fetcher",
    },
];

fn main() {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo");
    let here = Path::new(&manifest_dir);
    let repo = here
        .parent()
        .and_then(Path::parent)
        .expect("tests/programs sits two levels down");
    outport_guest_build::build(
        &here.join("guests"),
        &[&repo.join("wit"), &repo.join("guests/sdk")],
        GUESTS,
        Embed::Path,
        "test_programs.rs",
    );
}
