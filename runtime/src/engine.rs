//! The wasmtime engine shared by all instances of a run: pooling allocator,
//! epoch-based deadlines, and compiled components cached on disk.
//!
//! Cache entries are keyed by the sha256 of the component, the outport
//! version and wasmtime's own compatibility hash of the engine settings
//! (which covers the wasmtime version, target and compiler flags), so a
//! different engine never loads another's artifact. Entries are written to a
//! temporary file and renamed into place, and each carries the sha256 of its
//! bytes, checked before the artifact is deserialised.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::ExporterPre;
use crate::bindings::cache::CacheBackendPre;
use crate::compile::CompileLimits;
use crate::error::Error;
use crate::limits::Limits;
use crate::state::InstanceState;

/// How often the epoch advances; deadlines are measured in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings fixed for the life of an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Most instances alive at once (sizes the pooling allocator).
    pub max_instances: u32,
    /// Largest linear memory any instance may get; per-instance limits
    /// below this are enforced by each store.
    pub max_memory_bytes: usize,
    /// Meter fuel (needed when a policy sets a `fuel` limit; it changes the
    /// compiled code, hence the cache key).
    pub fuel: bool,
    /// The `outport` binary, re-executed as `outport __compile` to compile
    /// third-party components in a child process under their compile
    /// limits; `None` compiles them in this process.
    pub compiler: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: default_cache_dir(),
            max_instances: 64,
            max_memory_bytes: Limits::default().memory_bytes.max(1 << 30),
            fuel: false,
            compiler: None,
        }
    }
}

/// The default compile cache: `$OUTPORT_CACHE_DIR`, else the user's cache
/// directory (`~/.cache/outport` on Linux).
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OUTPORT_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "outport").map(|d| d.cache_dir().join("components"))
}

/// A compiled component, not linked yet (see [`Engine::link`]).
pub struct Compiled {
    /// The compiled component (its type lists its imports and exports).
    pub component: Component,
    /// `sha256:` digest of the component's bytes.
    pub digest: String,
    /// Whether it came from the on-disk cache.
    pub from_cache: bool,
}

/// A component compiled for this engine, ready to instantiate.
#[derive(Clone)]
pub struct LoadedComponent {
    /// Pre-linked exporter (imports resolved once).
    pub pre: ExporterPre<InstanceState>,
    /// `sha256:` digest of the component's bytes.
    pub digest: String,
    /// Whether it came from the on-disk cache (no compilation).
    pub from_cache: bool,
}

/// A cache backend compiled for this engine, ready to instantiate.
#[derive(Clone)]
pub struct LoadedCacheBackend {
    /// Pre-linked cache backend.
    pub pre: CacheBackendPre<InstanceState>,
    /// `sha256:` digest of the component's bytes.
    pub digest: String,
}

/// Where a component comes from, which decides how it is compiled.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Embedded in the binary: compiled in this process.
    BuiltIn,
    /// Anything else: compiled in a child process bounded by these limits
    /// (when the engine has a [`EngineConfig::compiler`]).
    ThirdParty(CompileLimits),
}

/// The shared engine and linker.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<InstanceState>,
    cache_dir: Option<PathBuf>,
    fuel: bool,
    compiler: Option<PathBuf>,
    ticker: Option<EpochTicker>,
}

/// The settings that shape compiled code: the engine running components
/// and the `__compile` child use the same, so the child's artifacts load.
pub fn code_config(fuel: bool) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20);
    wasm
}

impl Engine {
    /// Builds the engine: async support, pooling allocator sized by
    /// `config`, epoch interruption with a ticker thread.
    pub fn new(config: EngineConfig) -> Result<Self, Error> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 16)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(config.max_memory_bytes)
            .table_elements(Limits::default().table_elements);
        let mut wasm = code_config(config.fuel);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&wasm).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        // Only wasi:http's own interfaces: the rest of WASI is linked above.
        // Whether a request may go anywhere is decided per instance.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        crate::bindings::add_to_linker(&mut linker).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Engine {
            engine,
            linker,
            cache_dir: config.cache_dir,
            fuel: config.fuel,
            compiler: config.compiler,
            ticker: Some(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The compile cache directory, if compilations are cached.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Compiles `bytes` (or loads the cached compilation) and links it as an
    /// exporter. `name` names the component in errors.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        origin: &Origin,
    ) -> Result<LoadedComponent, Error> {
        let compiled = self.compile(name, bytes, origin)?;
        self.link(name, compiled)
    }

    /// Compiles `bytes`, or loads the cached compilation: a built-in in
    /// this process, a third-party component in a bounded child process
    /// (see [`crate::compile`]) when the engine has a compiler binary.
    pub fn compile(&self, name: &str, bytes: &[u8], origin: &Origin) -> Result<Compiled, Error> {
        let digest = outport_image::sha256_digest(bytes);
        let key = cache_key(&self.engine, bytes);
        if let Some(component) = self
            .cache_dir
            .as_deref()
            .and_then(|dir| self.load_cached(dir, &key))
        {
            tracing::info!("loaded component {name} ({digest}) from the compile cache");
            return Ok(Compiled {
                component,
                digest,
                from_cache: true,
            });
        }
        let started = std::time::Instant::now();
        let component = match (origin, &self.compiler) {
            (Origin::ThirdParty(limits), Some(exe)) => {
                // Without a cache the child writes into a directory of its own.
                let scratch;
                let dir = match &self.cache_dir {
                    Some(dir) => dir.as_path(),
                    None => {
                        scratch = tempfile::tempdir().map_err(|e| {
                            Error::Component(name.to_string(), format!("cannot compile: {e}"))
                        })?;
                        scratch.path()
                    }
                };
                let job = crate::compile::Job {
                    exe,
                    dir,
                    key: &key,
                    fuel: self.fuel,
                    limits,
                };
                job.run(bytes)
                    .map_err(|e| Error::Compile(name.to_string(), e))?;
                match self.read_cached(dir, &key) {
                    Some(Ok(component)) => component,
                    Some(Err(e)) => {
                        return Err(Error::Component(
                            name.to_string(),
                            format!("cannot load: {e}"),
                        ));
                    }
                    None => {
                        return Err(Error::Component(
                            name.to_string(),
                            "the compiled artifact is missing".to_string(),
                        ));
                    }
                }
            }
            _ => {
                let component = Component::new(&self.engine, bytes).map_err(|e| {
                    Error::Component(name.to_string(), format!("cannot compile: {e:#}"))
                })?;
                if let Some(dir) = &self.cache_dir {
                    let stored = component
                        .serialize()
                        .map_err(|e| format!("{e:#}"))
                        .and_then(|artifact| store_cached(dir, &key, &artifact));
                    if let Err(e) = stored {
                        tracing::warn!("compile cache {}: {e}", dir.display());
                    }
                }
                component
            }
        };
        tracing::info!(
            "compiled component {name} ({digest}) in {} ms",
            started.elapsed().as_millis()
        );
        Ok(Compiled {
            component,
            digest,
            from_cache: false,
        })
    }

    /// Links a compiled component as an exporter.
    pub fn link(&self, name: &str, compiled: Compiled) -> Result<LoadedComponent, Error> {
        let pre = self
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| Error::Component(name.to_string(), format!("cannot link: {e:#}")))?;
        let pre = ExporterPre::new(pre)
            .map_err(|e| Error::Component(name.to_string(), format!("not an exporter: {e:#}")))?;
        Ok(LoadedComponent {
            pre,
            digest: compiled.digest,
            from_cache: compiled.from_cache,
        })
    }

    /// Compiles `bytes` (see [`Engine::compile`]) and links it as a cache
    /// backend (world `cache-backend`).
    pub fn load_cache_backend(
        &self,
        name: &str,
        bytes: &[u8],
        origin: &Origin,
    ) -> Result<LoadedCacheBackend, Error> {
        let compiled = self.compile(name, bytes, origin)?;
        self.link_cache_backend(name, compiled)
    }

    /// Links a compiled component as a cache backend.
    pub fn link_cache_backend(
        &self,
        name: &str,
        compiled: Compiled,
    ) -> Result<LoadedCacheBackend, Error> {
        let pre = self
            .linker
            .instantiate_pre(&compiled.component)
            .map_err(|e| Error::Component(name.to_string(), format!("cannot link: {e:#}")))?;
        let pre = CacheBackendPre::new(pre).map_err(|e| {
            Error::Component(name.to_string(), format!("not a cache backend: {e:#}"))
        })?;
        Ok(LoadedCacheBackend {
            pre,
            digest: compiled.digest,
        })
    }

    /// The cached compilation of `key` in `dir`, or `None` (then it is
    /// compiled again) when there is none or it does not load.
    fn load_cached(&self, dir: &Path, key: &str) -> Option<Component> {
        self.read_cached(dir, key)?.ok()
    }

    /// The cached compilation of `key` in `dir`: `None` without an entry or
    /// when its bytes do not match their checksum, an error saying why when
    /// the engine refuses it (a table or memory larger than the engine's
    /// pooling limits allow).
    fn read_cached(&self, dir: &Path, key: &str) -> Option<Result<Component, String>> {
        let artifact = std::fs::read(dir.join(format!("{key}.cwasm"))).ok()?;
        let recorded = std::fs::read_to_string(dir.join(format!("{key}.sha256"))).ok()?;
        if hex::encode(Sha256::digest(&artifact)) != recorded.trim() {
            tracing::warn!("compile cache entry {key} does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: the artifact was produced by `Component::serialize` on an
        // engine with the same compatibility hash (part of the key), and its
        // bytes match the checksum written with it.
        Some(
            unsafe { Component::deserialize(&self.engine, &artifact) }
                .map_err(|e| format!("{e:#}")),
        )
    }
}

/// Writes a cache entry: the artifact, then the checksum of its bytes
/// (last: an entry without one is never loaded), each to a temporary file
/// renamed into place.
pub fn store_cached(dir: &Path, key: &str, artifact: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let write = |name: String, data: &[u8]| -> Result<(), String> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| e.to_string())?;
        tmp.write_all(data).map_err(|e| e.to_string())?;
        tmp.persist(dir.join(name)).map_err(|e| e.to_string())?;
        Ok(())
    };
    write(format!("{key}.cwasm"), artifact)?;
    write(
        format!("{key}.sha256"),
        hex::encode(Sha256::digest(artifact)).as_bytes(),
    )
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

/// The compile-cache key of `bytes` on `engine`: the sha256 of the
/// component, the outport version and the engine's compatibility hash.
pub fn cache_key(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(Sha256::digest(bytes));
    hasher.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Feeds `Hash` output into sha256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A thread advancing the engine's epoch every [`EPOCH_TICK`].
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
        EpochTicker { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
