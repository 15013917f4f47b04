//! `outport exporter push PATH REF`: publishes a component as a Wasm OCI
//! artifact (see `outport::components::artifact`) and prints the manifest digest.

use std::path::Path;
use std::sync::Arc;

use outport::components::artifact::{Client, Reference};
use outport::engine::Origin;
use outport::engine::compile::CompileLimits;
use outport::sandbox::imports::Identity;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, EngineArgs};

pub async fn run(component: &Path, reference: &str, insecure: bool, args: &EngineArgs) -> u8 {
    let shown = component.display().to_string();
    let reference = match Reference::parse(reference) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let bytes = match std::fs::read(component) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read component {shown}: {e}");
            return EXIT_USAGE;
        }
    };
    // What it exports and imports goes into the artifact's config; a file
    // that does not compile is not published.
    let identity = match args
        .engine(false)
        .map_err(|e| format!("{e:#}"))
        .and_then(|engine| {
            let limits = CompileLimits::from(&outport::Limits::default());
            let compiled = engine
                .compile(&shown, &bytes, &Origin::ThirdParty(limits))
                .map_err(|e| e.to_string())?;
            Ok(Identity::of(engine.wasmtime(), &compiled.component))
        }) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let reporter: Arc<dyn outport::Reporter> = super::render::reporter(super::render::Mode::Plain);
    let pushed = match Client::new(reference, insecure, "push", reporter) {
        Ok(client) => {
            client
                .push(&bytes, &identity.exports, &identity.imports)
                .await
        }
        Err(e) => Err(e),
    };
    match pushed {
        Ok(digest) => {
            println!("{digest}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
