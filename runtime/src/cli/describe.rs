//! `outport exporters` and `outport cache backends`: what each built-in
//! component and each plugin says about itself.

use std::path::{Path, PathBuf};

use crate::Engine;
use crate::components::plugins::Shadowed;
use crate::engine::Origin;
use crate::engine::compile::CompileLimits;
use crate::host::bindings::types::ComponentInfo;
use crate::instance::Failure;

use super::error::{CliError, CliResult, EXIT_OK, exit_code};
use super::{EngineArgs, ExportersArgs};

/// Lists the built-in exporters and the plugins.
pub async fn exporters(args: ExportersArgs) -> CliResult {
    let plugins = args
        .plugins
        .dirs()
        .and_then(|dirs| dirs.list())
        .map_err(CliError::usage)?;
    let engine = engine(&args.engine)?;
    let mut code = EXIT_OK;
    for builtin in crate::components::builtin::EXPORTERS {
        let info = describe(&engine, builtin.name, builtin.wasm, &Origin::BuiltIn).await;
        code = code.max(show("exporter", builtin.name, info, None));
    }
    for plugin in &plugins {
        let path = plugin.path.display();
        let name = &plugin.name;
        match &plugin.shadowed {
            Some(Shadowed::ByBuiltin) => eprintln!(
                "warning: plugin {path} is shadowed by the built-in exporter {name}: type={name} runs the built-in"
            ),
            Some(Shadowed::ByPlugin(first)) => eprintln!(
                "warning: plugin {path} is shadowed by {}: type={name} runs that one",
                first.display()
            ),
            None => {
                let info = match std::fs::read(&plugin.path) {
                    Ok(bytes) => {
                        let origin =
                            Origin::ThirdParty(CompileLimits::from(&crate::Limits::default()));
                        describe(&engine, &path.to_string(), &bytes, &origin).await
                    }
                    Err(source) => Err(DescribeError::Read {
                        path: plugin.path.clone(),
                        source,
                    }),
                };
                code = code.max(show("exporter", name, info, Some(&plugin.path)));
            }
        }
    }
    Ok(code)
}

/// Lists the built-in cache backends.
pub async fn cache_backends(args: EngineArgs) -> CliResult {
    let engine = engine(&args)?;
    let mut code = EXIT_OK;
    for builtin in crate::components::builtin::CACHE_BACKENDS {
        let info = match engine.load_cache_backend(builtin.name, builtin.wasm, &Origin::BuiltIn) {
            Ok(c) => crate::instance::describe_cache_backend(engine.wasmtime(), &c)
                .await
                .map_err(DescribeError::Failed),
            Err(e) => Err(DescribeError::Load(e)),
        };
        code = code.max(show("cache backend", builtin.name, info, None));
    }
    Ok(code)
}

/// Why a component could not say what it is.
#[derive(Debug, thiserror::Error)]
enum DescribeError {
    /// A plugin file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The component did not compile or link.
    #[error(transparent)]
    Load(#[from] crate::Error),
    /// Its `describe()` failed.
    #[error("{0}")]
    Failed(Failure),
}

/// The engine.
fn engine(args: &EngineArgs) -> Result<Engine, CliError> {
    args.engine(false)
}

/// Loads exporter component `name` and calls its `describe()`.
async fn describe(
    engine: &Engine,
    name: &str,
    wasm: &[u8],
    origin: &Origin,
) -> Result<ComponentInfo, DescribeError> {
    let component = engine.load(name, wasm, origin)?;
    crate::instance::describe(engine.wasmtime(), &component)
        .await
        .map_err(DescribeError::Failed)
}

/// Prints what component `name` (`what`: exporter or cache backend; a
/// plugin when it has a `plugin` path) says about itself, one line and then
/// one line per option; returns the exit code for it.
fn show(
    what: &str,
    name: &str,
    info: Result<ComponentInfo, DescribeError>,
    plugin: Option<&Path>,
) -> u8 {
    let info = match info {
        Ok(info) => info,
        Err(e) => return exit_code(Err(CliError::failed(format!("{what} {name}: {e}")))),
    };
    let origin = match plugin {
        None => String::new(),
        Some(path) if info.name == name => format!(" [plugin {}]", path.display()),
        Some(path) => format!(
            " [plugin {}, describes itself as {}]",
            path.display(),
            info.name
        ),
    };
    println!("{name} {} - {}{origin}", info.version, info.summary);
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
