//! The built-in components: cold compile time (empty compile cache),
//! loading from the cache, instantiation time (precompiled, pooling
//! allocator, through the `outport` library), and an `outport export` run
//! cold and warm, counting the components it compiled.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use outport::Origin;
use outport::{EXPORTERS, Engine, EngineConfig};

use crate::cases::Env;
use crate::runner::{self, Cmd, median};

/// Instantiations timed per component.
const INSTANTIATIONS: usize = 2000;

/// One built-in's figures.
#[derive(Debug)]
pub struct Component {
    /// Its `type=` name.
    pub name: &'static str,
    /// Size of the `.wasm`.
    pub wasm_bytes: usize,
    /// Compile time with an empty cache, in ms.
    pub compile_ms: f64,
    /// Load time from the cache, in ms.
    pub cached_load_ms: f64,
    /// Median instantiation time, in µs.
    pub instantiate_us: f64,
    /// 99th percentile of the instantiation time, in µs.
    pub instantiate_p99_us: f64,
}

/// One `outport export` of the small image to all four built-ins.
#[derive(Debug)]
pub struct CliRun {
    /// Wall time, in seconds.
    pub secs: f64,
    /// Components it compiled (from its `OUTPORT_LOG=info` lines).
    pub compiled: usize,
    /// Components it loaded from the cache.
    pub from_cache: usize,
}

/// Everything about components.
#[derive(Debug)]
pub struct Components {
    /// Per built-in.
    pub builtins: Vec<Component>,
    /// An export with an empty compile cache.
    pub cold: CliRun,
    /// The same export again.
    pub warm: CliRun,
}

/// Measures the built-ins, then runs the export cold and warm.
pub fn measure(env: &Env, image: &std::path::Path) -> Result<Components> {
    let cache = tempfile::tempdir()?;
    let config = || EngineConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..EngineConfig::default()
    };
    let cold = Engine::new(config())?;
    let warm = Engine::new(config())?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut builtins = Vec::new();
    for builtin in EXPORTERS {
        let started = Instant::now();
        let compiled = cold.load(builtin.name, builtin.wasm, &Origin::BuiltIn)?;
        let compile_ms = started.elapsed().as_secs_f64() * 1e3;
        let started = Instant::now();
        let loaded = warm.load(builtin.name, builtin.wasm, &Origin::BuiltIn)?;
        let cached_load_ms = started.elapsed().as_secs_f64() * 1e3;
        if compiled.from_cache || !loaded.from_cache {
            bail!(
                "{}: the compile cache did not behave as expected",
                builtin.name
            );
        }
        let mut times = Vec::with_capacity(INSTANTIATIONS);
        for _ in 0..INSTANTIATIONS {
            let started = Instant::now();
            runtime
                .block_on(outport::instantiate_bare(warm.wasmtime(), &loaded))
                .map_err(anyhow::Error::msg)?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        builtins.push(Component {
            name: builtin.name,
            wasm_bytes: builtin.wasm.len(),
            compile_ms,
            cached_load_ms,
            instantiate_us: median(&times),
            instantiate_p99_us: times[times.len() * 99 / 100],
        });
    }
    let cli_cache = tempfile::tempdir()?;
    let cold = cli_run(env, image, cli_cache.path())?;
    let warm = cli_run(env, image, cli_cache.path())?;
    Ok(Components {
        builtins,
        cold,
        warm,
    })
}

/// `outport export` of `image` to every built-in, with compile cache `cache`.
pub fn cli_run(env: &Env, image: &std::path::Path, cache: &std::path::Path) -> Result<CliRun> {
    let _fs = env.fresh.before_run(&[])?;
    let out = tempfile::tempdir_in(&env.work)?;
    let dest = |name: &str| out.path().join(name).display().to_string();
    let mut args = vec![
        "export".to_owned(),
        image.display().to_string(),
        "--progress".to_owned(),
        "quiet".to_owned(),
    ];
    for spec in [
        format!("type=oci,dest={}", dest("oci.tar")),
        format!("type=docker,dest={}", dest("docker.tar")),
        format!("type=tar,dest={}", dest("rootfs.tar")),
        format!("type=local,dest={}", dest("rootfs")),
    ] {
        args.push("--output".to_owned());
        args.push(spec);
    }
    let cmd = Cmd::new(&env.outport, args)
        .env("OUTPORT_CACHE_DIR", cache)
        .env("OUTPORT_LOG", "info");
    let run = runner::run_ok(&env.fresh.cmd(&cmd)).context("export to every built-in")?;
    let count = |what: &str| run.stderr.lines().filter(|l| l.contains(what)).count();
    Ok(CliRun {
        secs: run.elapsed.as_secs_f64(),
        compiled: count("compiled component"),
        from_cache: count("from the compile cache"),
    })
}
