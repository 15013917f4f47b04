//! `outport new exporter NAME`: scaffolds a third-party exporter project
//! that builds out of the box with `cargo build --release --target
//! wasm32-wasip2`.

use std::path::{Path, PathBuf};

use super::error::{CliError, CliResult, EXIT_OK};

/// The checkout's guest SDK, the default `--sdk`.
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/sdk");

/// The toolchain outport itself is built with (it has the wasm32-wasip2 target).
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// Scaffolds the exporter `name` in `path` (default: `./NAME`), depending on
/// the SDK at `sdk` (default: this checkout's `guests/sdk`).
pub fn exporter(name: &str, path: Option<&Path>, sdk: Option<&Path>) -> CliResult {
    if !valid_name(name) {
        return Err(CliError::usage(format!(
            "{name:?} is not a valid exporter name (lowercase letters, digits and '-', starting with a letter)"
        )));
    }
    let dir = path.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; refusing to overwrite it",
            dir.display()
        )));
    }
    let sdk = match std::fs::canonicalize(sdk.unwrap_or(Path::new(SDK_DIR))) {
        Ok(p) if p.join("Cargo.toml").is_file() => p,
        _ => {
            return Err(CliError::usage(format!(
                "the outport-exporter SDK was not found at {}; give its path with --sdk PATH (guests/sdk of an outport checkout)",
                sdk.map_or_else(|| SDK_DIR.to_owned(), |p| p.display().to_string())
            )));
        }
    };
    match write(name, &dir, &sdk) {
        Ok(()) => {
            println!(
                "created exporter {name} in {}\nbuild it:  cd {} && cargo build --release --target wasm32-wasip2\nrun it:    outport export IMAGE --output type=wasm,component=target/wasm32-wasip2/release/{}.wasm,dest=out.txt",
                dir.display(),
                dir.display(),
                name.replace('-', "_")
            );
            Ok(EXIT_OK)
        }
        Err(e) => Err(CliError::failed(format!(
            "cannot create {}: {e}",
            dir.display()
        ))),
    }
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn write(name: &str, dir: &Path, sdk: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // `create_dir` (not `_all`) fails when another process made it meanwhile.
    std::fs::create_dir(dir)?;
    std::fs::create_dir(dir.join("src"))?;
    let sdk_toml = sdk
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let files = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("{name}", name)
                .replace("{sdk}", &sdk_toml),
        ),
        ("src/lib.rs", LIB_RS.replace("{name}", name)),
        (
            "README.md",
            README
                .replace("{name}", name)
                .replace("{wasm}", &name.replace('-', "_")),
        ),
        (".gitignore", "target/\n".to_owned()),
        ("rust-toolchain.toml", TOOLCHAIN.to_owned()),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text)?;
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
outport-exporter = { path = "{sdk}" }

# Its own workspace: it builds alone.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#;

const LIB_RS: &str = r#"//! The {name} exporter: an outport exporter (world
//! `outport:exporter/exporter`), built on the `outport-exporter` SDK.
//!
//! It writes one line per image manifest (digest and platform) to its
//! `dest` file. Replace `export` with your own logic.

use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Request, ResponseEntry, dest, errors, image,
    log, walk,
};

const NAME: &str = "{name}";

const OPTIONS: &[OptionSpec] =
    &[OptionSpec::once("greeting", "first line of the output").default("hello")];

struct Exporter;

impl Guest for Exporter {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "list the image's manifests and platforms".into(),
            options: describe(OPTIONS),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        Parsed::new(NAME, OPTIONS, &options)?;
        Ok(OutputKind::File)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let parsed = Parsed::new(NAME, OPTIONS, &request.options)?;
        let mut text = format!("{}\n", parsed.str("greeting").unwrap_or("hello"));
        let root = image::root();
        for manifest in walk::image_manifests(&root)? {
            let platform = manifest.platform.map(|p| p.to_string()).unwrap_or_default();
            text.push_str(&format!("{} {platform}\n", manifest.descriptor.digest));
        }
        let dest = dest::granted(request.destination)?;
        let (file, stream) = dest::open_file_stream(&dest, NAME)?;
        dest::write_all(&stream, text.as_bytes(), &file)?;
        stream
            .blocking_flush()
            .map_err(|e| errors::stream_error(&file, e))?;
        log::info(&format!("wrote {file}"));
        Ok(vec![ResponseEntry {
            key: "containerimage.digest".into(),
            value: root.digest,
        }])
    }
}

outport_exporter::export!(Exporter);
"#;

const README: &str = r#"# {name}

An [outport](https://github.com/) exporter, scaffolded by `outport new exporter {name}`.

```sh
cargo build --release --target wasm32-wasip2
outport export IMAGE --output type=wasm,component=target/wasm32-wasip2/release/{wasm}.wasm,dest=out.txt
```

Options: `greeting` (first line of the output, default `hello`). See
`docs/writing-an-exporter.md` in outport's repository for the contract.
"#;
