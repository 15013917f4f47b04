//! `outport exporters`: what each built-in exporter says about itself.

use super::{EXIT_FAILED, EXIT_OK, EngineArgs};

pub async fn run(args: EngineArgs) -> u8 {
    let engine = match args.engine(false) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };
    let mut code = EXIT_OK;
    for builtin in outport::builtin::EXPORTERS {
        let info = match engine.load(
            builtin.name,
            builtin.wasm,
            &outport::engine::Origin::BuiltIn,
        ) {
            Ok(c) => outport::instance::describe(engine.wasmtime(), &c).await,
            Err(e) => Err(e.to_string()),
        };
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
            }
            Err(e) => {
                eprintln!("error: exporter {}: {e}", builtin.name);
                code = EXIT_FAILED;
            }
        }
    }
    code
}
