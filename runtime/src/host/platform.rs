//! The platform of the machine outport runs on, in OCI (Go) terms, as
//! passed to components in each request (`host-platform`).

use crate::host::bindings::types::Platform;

/// The host's `os/architecture[/variant]`: Rust's target names mapped to
/// Go's `GOOS`/`GOARCH` (`x86_64` → `amd64`, `aarch64` → `arm64/v8`).
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "x86" => ("386", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
        "loongarch64" => ("loong64", None),
        other => (other, None),
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    Platform {
        architecture: architecture.to_owned(),
        os: os.to_owned(),
        os_version: None,
        os_features: Vec::new(),
        variant: variant.map(str::to_owned),
    }
}
