//! `outport exporter push PATH REF`: publishes a component as a Wasm OCI
//! artifact (see `crate::components::artifact`) and prints the manifest digest.

use std::path::Path;
use std::sync::Arc;

use crate::components::artifact::{Client, Reference};
use crate::engine::Origin;
use crate::engine::compile::CompileLimits;
use crate::sandbox::imports::Identity;

use super::EngineArgs;
use super::error::{CliError, CliResult, EXIT_OK};

pub async fn run(
    component: &Path,
    reference: &str,
    insecure: bool,
    args: &EngineArgs,
) -> CliResult {
    let shown = component.display().to_string();
    let reference = Reference::parse(reference).map_err(CliError::usage)?;
    let bytes = std::fs::read(component)
        .map_err(|e| CliError::usage(format!("cannot read component {shown}: {e}")))?;
    // What it exports and imports goes into the artifact's config; a file
    // that does not compile is not published.
    let identity = args
        .engine(false)
        .map_err(|e| e.to_string())
        .and_then(|engine| {
            let limits = CompileLimits::from(&crate::Limits::default());
            let compiled = engine
                .compile(&shown, &bytes, &Origin::ThirdParty(limits))
                .map_err(|e| e.to_string())?;
            Ok(Identity::of(engine.wasmtime(), &compiled.component))
        })
        .map_err(CliError::usage)?;
    let reporter: Arc<dyn crate::Reporter> = super::render::reporter(super::render::Mode::Plain);
    let pushed = match Client::new(reference, insecure, "push", reporter) {
        Ok(client) => {
            client
                .push(&bytes, &identity.exports, &identity.imports)
                .await
        }
        Err(e) => Err(e),
    };
    let digest = pushed.map_err(CliError::failed)?;
    println!("{digest}");
    Ok(EXIT_OK)
}
