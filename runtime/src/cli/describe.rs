//! `outport exporters` and `outport cache backends`: what each built-in
//! component says about itself.

use outport::bindings::types::ComponentInfo;

use super::{EXIT_FAILED, EXIT_OK, EngineArgs};

/// Lists the built-in exporters.
pub async fn exporters(args: EngineArgs) -> u8 {
    let Some(engine) = engine(&args) else {
        return EXIT_FAILED;
    };
    let mut code = EXIT_OK;
    for builtin in outport::builtin::EXPORTERS {
        let info = match engine.load(builtin.name, builtin.wasm) {
            Ok(c) => outport::instance::describe(engine.wasmtime(), &c).await,
            Err(e) => Err(e.to_string()),
        };
        code = code.max(print(info, "exporter", builtin.name));
    }
    code
}

/// Lists the built-in cache backends.
pub async fn cache_backends(args: EngineArgs) -> u8 {
    let Some(engine) = engine(&args) else {
        return EXIT_FAILED;
    };
    let mut code = EXIT_OK;
    for builtin in outport::builtin::CACHE_BACKENDS {
        let info = match engine.load_cache_backend(builtin.name, builtin.wasm) {
            Ok(c) => outport::instance::describe_cache_backend(engine.wasmtime(), &c).await,
            Err(e) => Err(e.to_string()),
        };
        code = code.max(print(info, "cache backend", builtin.name));
    }
    code
}

/// The engine, or `None` once the error is printed.
fn engine(args: &EngineArgs) -> Option<outport::Engine> {
    args.engine().map_err(|e| eprintln!("error: {e:#}")).ok()
}

/// Prints a component's name line and one line per option; returns the
/// exit code for it.
fn print(info: Result<ComponentInfo, String>, what: &str, name: &str) -> u8 {
    match info {
        Ok(info) => {
            println!("{} {} - {}", info.name, info.version, info.summary);
            for opt in &info.options {
                let mut extra = Vec::new();
                if let Some(d) = &opt.default_value {
                    extra.push(format!("default {d}"));
                }
                if opt.repeatable {
                    extra.push("repeatable".to_string());
                }
                let extra = if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", extra.join(", "))
                };
                println!("    {:<36} {}{extra}", opt.key, opt.help);
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {what} {name}: {e}");
            EXIT_FAILED
        }
    }
}
