//! `outport inspect COMPONENT`: what a component is and what it asks for,
//! so an operator can decide before allowing it.

use crate::engine::Origin;
use crate::engine::compile::CompileLimits;
use crate::sandbox::imports::{self, Identity};

use super::EngineArgs;
use super::error::{CliError, CliResult, EXIT_OK};

pub fn run(component: &str, args: &EngineArgs) -> CliResult {
    use crate::components::builtin::{CACHE_BACKENDS, EXPORTER_ALIASES, EXPORTERS, find};
    let builtin = find(EXPORTERS, EXPORTER_ALIASES, component)
        .or_else(|| find(CACHE_BACKENDS, &[], component));
    let (bytes, origin) = match builtin {
        Some(builtin) => (builtin.wasm.to_vec(), Origin::BuiltIn),
        None => match std::fs::read(component) {
            Ok(bytes) => {
                let limits = CompileLimits::from(&crate::Limits::default());
                (bytes, Origin::ThirdParty(limits))
            }
            Err(e) => {
                return Err(CliError::usage(format!(
                    "cannot read component {component}: {e}"
                )));
            }
        },
    };
    let engine = args.engine(false)?;
    let compiled = engine
        .compile(component, &bytes, &origin)
        .map_err(CliError::failed)?;
    let identity = Identity::of(engine.wasmtime(), &compiled.component);
    println!("component: {component}");
    println!("digest: {}", compiled.digest);
    println!("size: {} bytes", bytes.len());
    let world = identity
        .world()
        .unwrap_or("none (not an outport component)");
    let version = identity.contract_version().unwrap_or("unknown");
    println!("world: {}/{world}", imports::CONTRACT_PACKAGE);
    println!("contract version: {version}");
    println!("imports:");
    for name in &identity.imports {
        let network = imports::Grants {
            network: true,
            imports: &[],
        };
        let note = if imports::granted(name, imports::Grants::default()) {
            ""
        } else if imports::granted(name, network) {
            "  (granted only with network-hosts in its policy)"
        } else {
            "  (not granted unless its policy entry lists it in imports)"
        };
        println!("  {name}{note}");
    }
    println!("exports:");
    for name in &identity.exports {
        println!("  {name}");
    }
    Ok(EXIT_OK)
}
