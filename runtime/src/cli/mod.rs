//! Command-line parsing and dispatch.

mod cache;
mod describe;
mod error;
mod export;
mod inspect;
mod new;
mod policy;
mod push;
mod render;
mod size;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use error::{CliError, CliResult, EXIT_OK, exit_code};

/// Run container-image exporters as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "outport", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Export an image to one or more outputs at once.
    Export(Box<ExportArgs>),
    /// List the built-in exporters and the plugins, with their options.
    Exporters(ExportersArgs),
    /// Exporter components: publish one to a registry.
    #[command(subcommand)]
    Exporter(ExporterCommand),
    /// Build caches: export, import, list the backends.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The sandbox policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Scaffold a new project.
    #[command(subcommand)]
    New(NewCommand),
    /// Print a component's identity: digest, size, the world and contract
    /// version it targets, the imports it asks for and whether the default
    /// policy grants them.
    Inspect {
        /// The component (.wasm), or a built-in exporter's name.
        component: String,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Compile a component read from stdin into the compile cache, under
    /// an address-space limit (run by outport itself; see `compile.rs`).
    #[command(name = "__compile", hide = true)]
    Compile(CompileArgs),
    /// Write the JSON Schemas generated from outport's types (policy,
    /// metadata file) into DIR: `schemas/` of the repository is what this
    /// writes (see `crate::schemas`).
    #[command(name = "__schemas", hide = true)]
    Schemas {
        /// The directory to write them into.
        dir: PathBuf,
    },
}

/// Arguments of the hidden `outport __compile`.
#[derive(clap::Args, Debug)]
struct CompileArgs {
    /// The address-space limit.
    #[arg(long)]
    memory_bytes: u64,
    /// Compile with fuel metering.
    #[arg(long)]
    fuel: bool,
}

/// `outport exporter ...`.
#[derive(Subcommand, Debug)]
enum ExporterCommand {
    /// Publish a component to a registry as a Wasm OCI artifact (config
    /// application/vnd.wasm.config.v0+json, one application/wasm layer), for
    /// `--output type=wasm,ref=REF`; prints the manifest digest.
    Push {
        /// The component (.wasm).
        component: PathBuf,
        /// Where to publish it: HOST[:PORT]/REPO:TAG.
        reference: String,
        /// Plain HTTP instead of HTTPS.
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// `outport new ...`.
#[derive(Subcommand, Debug)]
enum NewCommand {
    /// A third-party exporter (Rust, on the outport-exporter SDK) that builds
    /// with `cargo build --release --target wasm32-wasip2`.
    Exporter {
        /// The exporter's name (lowercase letters, digits and '-').
        name: String,
        /// The project directory to create (default: ./NAME); never overwritten.
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The SDK crate (guests/sdk of an outport checkout; default: the
        /// one this outport was built from).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

/// `outport cache ...`.
#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Export a build cache (a BuildKit local cache directory, or an image
    /// whose layers give the cache) to one or more cache backends at once.
    Export(Box<CacheExportArgs>),
    /// Import a build cache into a local OCI layout directory.
    Import(Box<CacheImportArgs>),
    /// List the built-in cache backends and their options.
    Backends(EngineArgs),
}

/// Options of `outport cache export`.
#[derive(clap::Args, Debug)]
struct CacheExportArgs {
    /// A BuildKit local cache directory (its `latest` entry, or its only
    /// one), else an image as `outport export` takes it.
    input: String,
    /// A cache export, as `type=local,dest=DIR[,id=ID][,mode=min|max][,KEY=VALUE...]`.
    /// Repeat for several; they run concurrently.
    #[arg(long = "export-cache", value_name = "SPEC", required = true)]
    export_cache: Vec<String>,
    #[command(flatten)]
    run: CacheRunArgs,
}

/// Options of `outport cache import`.
#[derive(clap::Args, Debug)]
struct CacheImportArgs {
    /// The cache to import, as `type=local,src=DIR[,tag=TAG|digest=DIGEST]`.
    #[arg(long = "import-cache", value_name = "SPEC")]
    import_cache: String,
    /// The directory to write the cache into, as an OCI image layout.
    #[arg(long, value_name = "DIR")]
    dest: PathBuf,
    #[command(flatten)]
    run: CacheRunArgs,
}

/// Options the `outport cache` commands share.
#[derive(clap::Args, Debug)]
struct CacheRunArgs {
    /// Write every cache instance's response to FILE (JSON, the `cache` list).
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    #[command(flatten)]
    run: RunArgs,
}

/// `outport policy ...`.
#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Print the effective policy (the safe defaults without --policy), as TOML.
    Show {
        /// The policy file (TOML; see schemas/policy.schema.json).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
}

/// Options of `outport export`.
#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// The image: an OCI layout directory, an OCI archive or a docker-save
    /// tarball, optionally followed by `:REF` (a name, a tag or a digest)
    /// to choose one image among several; or skopeo's `oci:DIR[:REF]`,
    /// `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`; or `-`, an
    /// archive on standard input.
    input: String,
    /// An output, as `type=oci,dest=out.tar[,id=ID][,KEY=VALUE...]`
    /// (buildctl-style CSV; quote a field that holds a comma). Repeat for
    /// several outputs; they run concurrently.
    #[arg(short, long = "output", value_name = "SPEC", required = true)]
    outputs: Vec<String>,
    /// A cache export of the image's layers, as
    /// `type=local,dest=DIR[,id=ID][,mode=min|max][,ignore-error=true][,KEY=VALUE...]`.
    /// Runs concurrently with the outputs; repeatable.
    #[arg(long = "export-cache", value_name = "SPEC")]
    export_cache: Vec<String>,
    /// Write every instance's response, kept apart by instance ID, to FILE
    /// (JSON).
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Write the image ID (the config digest, or the image digest of a
    /// multi-platform image) of one instance to FILE, as buildx does.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// The instance whose image ID goes to --iidfile (default: the first
    /// oci or docker output).
    #[arg(long, value_name = "ID", requires = "iidfile")]
    iidfile_from: Option<String>,
    /// Cancel the other instances as soon as one fails.
    #[arg(long)]
    fail_fast: bool,
    /// Record these build sources in each image config's build info
    /// (`moby.buildkit.buildinfo.v0`): a JSON list of
    /// `{"type":"image|git|http","ref":...,"pin":...}`.
    #[arg(long, value_name = "FILE")]
    build_sources: Option<PathBuf>,
    /// A build attribute, recorded in the build info of outputs with
    /// `buildinfo-attrs=true` (repeatable; a later KEY wins).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    attrs: Vec<String>,
    /// Attach an SLSA provenance attestation to each platform of the image,
    /// as BuildKit does: `provenance[,mode=min|max]` or
    /// `type=provenance,mode=max` (buildx syntax). Timestamps follow
    /// $SOURCE_DATE_EPOCH when set. An output with `attest=false` gets none.
    #[arg(long = "attest", value_name = "TYPE[,mode=min|max]")]
    attest: Vec<String>,
    /// Seconds since 1970 for reproducible timestamps: attestations, and
    /// outputs with `rewrite-timestamp=true` (default: $SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    #[command(flatten)]
    run: RunArgs,
}

/// Sandbox, progress and engine options of the commands that run instances.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Wall-clock limit for each instance, in seconds (default: the
    /// policy's, else 3600); a policy's per-component entry still wins.
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(..=crate::sandbox::limits::MAX_SECONDS))]
    timeout: Option<u64>,
    /// The sandbox policy (TOML): limits, per-component overrides, pinning,
    /// destination rules. Without it, the defaults of `outport policy show`.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Pull a `docker://` input over plain HTTP instead of HTTPS (a
    /// registry on loopback or a trusted network; never guessed).
    #[arg(long)]
    src_insecure: bool,
    /// Most bytes the blob store of `docker://` inputs keeps (in the cache
    /// directory's `blobs/`): after the run, least recently used blobs are
    /// removed until it fits, never one the run used (`10GiB`, `500m`,
    /// bytes; `0` keeps only the run's).
    #[arg(long, value_name = "SIZE", default_value = "10GiB", value_parser = size::parse_size)]
    blob_store_max: u64,
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `outport exporters`.
#[derive(clap::Args, Debug)]
struct ExportersArgs {
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Where `type=NAME` finds plugins, for the subcommands that resolve
/// exporters.
#[derive(clap::Args, Debug)]
struct PluginArgs {
    /// A directory where `type=NAME` finds the plugin NAME.wasm when NAME is
    /// not a built-in exporter (repeatable; searched in order, then
    /// $OUTPORT_PLUGIN_DIR, else the user's config dir's outport/plugins).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
}

impl PluginArgs {
    fn dirs(&self) -> Result<crate::components::plugins::PluginDirs, crate::Error> {
        crate::components::plugins::PluginDirs::with_default(&self.plugin_dirs)
    }
}

/// Engine options shared by the subcommands.
#[derive(clap::Args, Debug)]
struct EngineArgs {
    /// Directory for compiled components (default: $OUTPORT_CACHE_DIR, else
    /// the user's cache directory).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components on every run instead of caching them.
    #[arg(long)]
    no_cache: bool,
}

impl EngineArgs {
    /// The engine: fuel metered when `fuel`, third-party components
    /// compiled in a child process of this binary.
    fn engine(&self, fuel: bool) -> Result<crate::Engine, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::failed(format!("cannot find the outport binary: {e}")))?;
        let mut config = crate::EngineConfig {
            fuel,
            compiler: Some(exe),
            ..crate::EngineConfig::default()
        };
        if self.no_cache {
            config.cache_dir = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir = Some(dir.clone());
        }
        crate::Engine::new(config).map_err(CliError::failed)
    }
}

/// Progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Progress {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines.
    Plain,
    /// Only errors.
    Quiet,
}

/// Parses the command line, runs it, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPORT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let cli = Cli::parse();
    if let Command::Compile(args) = &cli.command {
        // Before any runtime thread starts: the child stays small.
        return ExitCode::from(exit_code(compile(args)));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = CliError::failed(format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit_code(Err(e)));
        }
    };
    let result = match cli.command {
        Command::Export(args) => runtime.block_on(export::run(*args)),
        Command::Exporters(args) => runtime.block_on(describe::exporters(args)),
        Command::Exporter(ExporterCommand::Push {
            component,
            reference,
            insecure,
            engine,
        }) => runtime.block_on(push::run(&component, &reference, insecure, &engine)),
        Command::Cache(CacheCommand::Export(args)) => runtime.block_on(cache::export(*args)),
        Command::Cache(CacheCommand::Import(args)) => runtime.block_on(cache::import(*args)),
        Command::Cache(CacheCommand::Backends(args)) => {
            runtime.block_on(describe::cache_backends(args))
        }
        Command::Policy(PolicyCommand::Show { policy }) => policy::show(policy.as_deref()),
        Command::New(NewCommand::Exporter { name, path, sdk }) => {
            new::exporter(&name, path.as_deref(), sdk.as_deref())
        }
        Command::Inspect { component, engine } => inspect::run(&component, &engine),
        Command::Compile(args) => compile(&args),
        Command::Schemas { dir } => schemas(&dir),
    };
    ExitCode::from(exit_code(result))
}

/// `outport __compile`: the child side of [`crate::engine::compile`].
fn compile(args: &CompileArgs) -> CliResult {
    crate::engine::compile::child(args.memory_bytes, args.fuel).map_err(CliError::failed)?;
    Ok(EXIT_OK)
}

/// `outport __schemas DIR`: writes the generated JSON Schemas into DIR.
fn schemas(dir: &std::path::Path) -> CliResult {
    let paths = crate::schemas::write_all(dir).map_err(|e| {
        CliError::failed(format!("writing the schemas into {}: {e}", dir.display()))
    })?;
    for path in paths {
        println!("{}", path.display());
    }
    Ok(EXIT_OK)
}
