//! The wasmtime engine shared by all instances of a run: pooling allocator,
//! epoch-based deadlines, and compiled components cached on disk.
//!
//! Cache entries are keyed by the sha256 of the component, the outport
//! version and wasmtime's own compatibility hash of the engine settings
//! (which covers the wasmtime version, target and compiler flags), so a
//! different engine never loads another's artifact; each is signed with a
//! secret of the cache (see [`crate::engine::compile_cache`]) and verified on load.

pub mod compile;
pub mod compile_cache;

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::engine::compile::CompileLimits;
use crate::engine::compile_cache::CompileCache;
use crate::error::Error;
use crate::host::bindings::ExporterPre;
use crate::host::bindings::cache::CacheBackendPre;
use crate::instance::state::InstanceState;
use crate::sandbox::limits::{
    ENGINE_MAX_INSTANCES, ENGINE_MAX_MEMORY_BYTES, ENGINE_MAX_TABLE_ELEMENTS,
};

/// How often the epoch advances; deadlines are measured in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings fixed for the life of an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` disables the cache
    /// (so does a directory that cannot be trusted, with a warning).
    pub cache_dir: Option<PathBuf>,
    /// Most instances alive at once (sizes the pooling allocator).
    pub max_instances: u32,
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
    cache: Option<CompileCache>,
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
    /// `config` (each instance's slot holds the `ENGINE_MAX_*` limits of
    /// [`crate::sandbox::limits`]), epoch interruption with a ticker thread, and the
    /// compile cache when its directory can be trusted.
    pub fn new(config: EngineConfig) -> Result<Self, Error> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances;
        let per_component = ENGINE_MAX_INSTANCES as u32;
        pool.total_component_instances(n)
            .total_core_instances(n * per_component)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_core_instances_per_component(per_component)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_memory_size(ENGINE_MAX_MEMORY_BYTES)
            .table_elements(ENGINE_MAX_TABLE_ELEMENTS);
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
        crate::host::add_to_linker(&mut linker).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(Engine {
            engine,
            linker,
            cache: config.cache_dir.as_deref().and_then(CompileCache::open),
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
        self.cache.as_ref().map(CompileCache::dir)
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
    /// (see [`crate::engine::compile`]) when the engine has a compiler binary.
    pub fn compile(&self, name: &str, bytes: &[u8], origin: &Origin) -> Result<Compiled, Error> {
        let digest = outport_image::sha256_digest(bytes);
        let key = cache_key(&self.engine, bytes);
        if let Some(component) = self.load_cached(&key) {
            tracing::info!("loaded component {name} ({digest}) from the compile cache");
            return Ok(Compiled {
                component,
                digest,
                from_cache: true,
            });
        }
        let started = std::time::Instant::now();
        let (component, artifact) = match (origin, &self.compiler) {
            (Origin::ThirdParty(limits), Some(exe)) => {
                let job = crate::engine::compile::Job {
                    exe,
                    fuel: self.fuel,
                    limits,
                };
                let artifact = job.run(bytes).map_err(|source| Error::Compile {
                    component: name.to_string(),
                    source,
                })?;
                // SAFETY: the artifact is what `precompile_component` of this
                // binary, with this engine's code settings, wrote to the
                // pipe from the child; it never rested anywhere else.
                let component = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| {
                        Error::Component(name.to_string(), format!("cannot load: {e:#}"))
                    })?;
                (component, Some(artifact))
            }
            _ => {
                let component = Component::new(&self.engine, bytes).map_err(|e| {
                    Error::Component(name.to_string(), format!("cannot compile: {e:#}"))
                })?;
                (component, None)
            }
        };
        if let Some(cache) = &self.cache {
            let stored = match artifact {
                Some(artifact) => Ok(artifact),
                None => component.serialize().map_err(|e| format!("{e:#}")),
            }
            .and_then(|artifact| cache.store(&key, &artifact).map_err(|e| e.to_string()));
            if let Err(e) = stored {
                tracing::warn!("compile cache {}: {e}", cache.dir().display());
            }
        }
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

    /// The cached compilation of `key`, or `None` (then it is compiled
    /// again) when there is none, it does not verify, or it does not load.
    fn load_cached(&self, key: &str) -> Option<Component> {
        let artifact = self.cache.as_ref()?.load(key)?;
        // SAFETY: the entry carries a MAC, under the cache's secret key, of
        // its cache key (which covers the engine's compatibility hash) and
        // its bytes: this host's outport wrote it, from `serialize` or the
        // compile child's `precompile_component` on the same settings.
        unsafe { Component::deserialize(&self.engine, &artifact) }.ok()
    }
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
