//! A session exports one image to several outputs at once. Each output is
//! an instance with its own store, limits and destination; one failing
//! does not affect the others, and each keeps its own response.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinSet;

use outport_image::Image;

use crate::buildinfo::{self, BuildInputs};
use crate::cache::Cache;
use crate::cache::config::Mode;
use crate::components::artifact::{self, Reference};
use crate::components::builtin::{self, Builtin};
use crate::components::plugins::{self, PluginDirs};
use crate::engine::compile::CompileLimits;
use crate::engine::{Compiled, Engine, LoadedCacheBackend, LoadedComponent, Origin};
use crate::error::Error;
use crate::host::bindings::types::CacheOperation;
use crate::image::ahead::VerifyAhead;
use crate::instance::{self, Failure, FailureKind, InstanceResult, InstanceSpec, Role, Status};
use crate::run::context::RunContext;
use crate::run::output_spec::{OutputSpec, assign_ids, assign_ids_with};
use crate::run::reporter::Reporter;
use crate::sandbox::imports;
use crate::sandbox::limits::Limits;
use crate::sandbox::policy::Policy;
use crate::sandbox::reach::{self, Reach};

/// The results of a session, one per output, in the order given.
#[derive(Clone, Debug)]
pub struct SessionResult {
    /// Per-instance results.
    pub exporters: Vec<InstanceResult>,
    /// Cache instances' results (`--export-cache`, `--import-cache`).
    pub cache: Vec<CacheResult>,
}

/// One cache instance's result.
#[derive(Clone, Debug)]
pub struct CacheResult {
    /// The instance's result.
    pub instance: InstanceResult,
    /// `ignore-error=true`: a failure is reported but does not fail the run.
    pub ignore_error: bool,
}

impl SessionResult {
    /// True when every instance succeeded, cache instances with
    /// `ignore-error=true` aside.
    pub fn all_ok(&self) -> bool {
        self.exporters.iter().all(InstanceResult::is_ok)
            && self
                .cache
                .iter()
                .all(|c| c.instance.is_ok() || c.ignore_error)
    }

    /// The legacy merged response: the successful instances' keys in
    /// output order, the first instance winning when two set the same key
    /// (as BuildKit's single `ExporterResponse` map behaved).
    pub fn merged_response(&self) -> BTreeMap<String, String> {
        let mut merged = BTreeMap::new();
        for result in self.exporters.iter().filter(|r| r.is_ok()) {
            for (k, v) in &result.response {
                merged.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        merged
    }
}

/// Outputs checked and their components loaded by [`Session::prepare`],
/// ready for [`Session::run`]: per instance its spec, its component and its
/// build-info choice.
#[derive(Default)]
pub struct Plan {
    instances: Vec<(InstanceSpec, LoadedComponent, buildinfo::Choice)>,
}

/// Runs exports against one engine.
pub struct Session {
    engine: Arc<Engine>,
    reporter: Arc<dyn Reporter>,
    limits: Limits,
    fail_fast: bool,
    build_info: BuildInputs,
    policy: Policy,
    plugins: PluginDirs,
    source_date_epoch: Option<u64>,
}

impl Session {
    /// A session on `engine`, reporting to `reporter`, with `limits` for
    /// every instance.
    pub fn new(engine: Arc<Engine>, reporter: Arc<dyn Reporter>, limits: Limits) -> Self {
        Session {
            engine,
            reporter,
            limits,
            fail_fast: false,
            build_info: BuildInputs::default(),
            policy: Policy::default(),
            plugins: PluginDirs::default(),
            source_date_epoch: None,
        }
    }

    /// Sets the sandbox policy (see [`crate::sandbox::policy`]): per-component
    /// limits over the session's, pinning, destination rules.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the directories where `type=NAME` finds the plugin `NAME.wasm`
    /// (see [`crate::components::plugins`]; default: none).
    pub fn plugins(mut self, dirs: PluginDirs) -> Self {
        self.plugins = dirs;
        self
    }

    /// Sets what goes into each image config's build info
    /// (`--build-sources`, `--attr`; see [`crate::buildinfo`]).
    pub fn build_info(mut self, inputs: BuildInputs) -> Self {
        self.build_info = inputs;
        self
    }

    /// Sets the source date epoch passed to every instance (for
    /// `rewrite-timestamp=true`).
    pub fn source_date_epoch(mut self, epoch: Option<u64>) -> Self {
        self.source_date_epoch = epoch;
        self
    }

    /// Cancels the remaining instances as soon as one fails (their
    /// destinations are left untouched).
    pub fn fail_fast(mut self, enable: bool) -> Self {
        self.fail_fast = enable;
        self
    }

    /// Checks the outputs (types known, IDs unique, host-owned options
    /// valid, third-party components, by path or plugin name, pinned as
    /// the policy asks) and loads their components; fails before anything
    /// runs. Run the result with
    /// [`Session::run`].
    pub fn prepare(&self, outputs: &[OutputSpec]) -> Result<Plan, Error> {
        let ids = assign_ids(outputs)?;
        let mut loaded: HashMap<String, LoadedComponent> = HashMap::new();
        let mut plan = Vec::new();
        for (spec, id) in outputs.iter().zip(ids) {
            let mut options = spec.options.clone();
            let choice = buildinfo::take_options(&id, &mut options)?;
            let resolved = self.resolve(
                &format!("output {id}"),
                &spec.kind,
                &mut options,
                (builtin::EXPORTERS, builtin::EXPORTER_ALIASES),
            )?;
            if spec.kind == builtin::IMAGE_ALIAS && !options.iter().any(|(k, _)| k == "push") {
                // The exporter refuses it: outport keeps no image store.
                options.push(("push".to_string(), "false".to_string()));
            }
            let (network, _) = self.network(&format!("output {id}"), &resolved, &options)?;
            let component =
                self.load_once(&mut loaded, &resolved, !network.is_empty(), |n, c| {
                    self.engine.link(n, c)
                })?;
            let limits = resolved.limits;
            let instance = InstanceSpec {
                id,
                kind: spec.kind.clone(),
                dest: spec.dest.clone(),
                options,
                limits,
                network,
                s3: None,
            };
            plan.push((instance, component, choice));
        }
        Ok(Plan { instances: plan })
    }

    /// Checks `--export-cache` (`operation` export) or `--import-cache`
    /// specifications as [`Session::prepare`] does outputs, taking the
    /// runtime's cache options (`mode`, `ignore-error`, and `src` for an
    /// import); instance IDs default to `cache-0`, `cache-1`, …
    pub fn prepare_cache(
        &self,
        specs: &[OutputSpec],
        operation: CacheOperation,
    ) -> Result<CachePlan, Error> {
        let ids = assign_ids_with(specs, "cache-", "cache instances")?;
        let mut loaded: HashMap<String, LoadedCacheBackend> = HashMap::new();
        let mut instances = Vec::new();
        for (spec, id) in specs.iter().zip(ids) {
            let what = format!("cache {id}");
            let mut options = spec.options.clone();
            let choice = CacheChoice::take(&what, &mut options, operation)?;
            let resolved = self.resolve(
                &what,
                &spec.kind,
                &mut options,
                (builtin::CACHE_BACKENDS, &[]),
            )?;
            let (network, s3) = self.network(&what, &resolved, &options)?;
            let backend = self.load_once(&mut loaded, &resolved, !network.is_empty(), |n, c| {
                self.engine.link_cache_backend(n, c)
            })?;
            let limits = resolved.limits;
            let spec = InstanceSpec {
                id,
                kind: spec.kind.clone(),
                dest: spec.dest.clone(),
                options,
                limits,
                network,
                s3,
            };
            instances.push(CacheInstance {
                spec,
                backend,
                choice,
            });
        }
        Ok(CachePlan {
            instances,
            operation,
        })
    }

    /// The component of an instance of type `kind`, checked against the
    /// policy's pinning when it is third-party, with the instance's limits.
    /// `what` names the instance in errors.
    fn resolve(
        &self,
        what: &str,
        kind: &str,
        options: &mut Vec<(String, String)>,
        builtins: (&[Builtin], &[(&str, &str)]),
    ) -> Result<Resolved, Error> {
        let (name, policy_name, wasm, reach) = match self.source(what, kind, options, builtins)? {
            Source::Builtin(builtin) => (
                builtin.name.to_string(),
                builtin.name.to_string(),
                Cow::Borrowed(builtin.wasm),
                Some(builtin.reach),
            ),
            Source::File(path) => {
                let name = path.display().to_string();
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::Usage(format!("{what}: cannot read component {name}: {e}"))
                })?;
                (name, file_stem(&path), Cow::Owned(bytes), None)
            }
            Source::Ref(reference, insecure) => {
                let bytes = self.pull(what, &reference, insecure)?;
                let name = reference.to_string();
                (name, reference.name().to_string(), Cow::Owned(bytes), None)
            }
        };
        let third_party = reach.is_none();
        let digest = outport_image::sha256_digest(&wasm);
        if third_party && !self.policy.allows_unpinned() && !self.policy.is_pinned(&digest) {
            return Err(Error::Usage(format!(
                "{what}: component {name} is not pinned and the policy has allow-unpinned = false; pin it with [components.\"{digest}\"]"
            )));
        }
        let limits = self.policy.limits_for(&self.limits, &policy_name, &digest);
        Ok(Resolved {
            name,
            policy_name,
            third_party,
            reach: reach.unwrap_or_default(),
            wasm,
            digest,
            limits,
        })
    }

    /// Where the component of an instance of type `kind` comes from:
    /// `type=wasm` takes its `component=PATH` out of `options`; a name of
    /// `builtins` is the built-in; any other name is a plugin file.
    fn source(
        &self,
        what: &str,
        kind: &str,
        options: &mut Vec<(String, String)>,
        (builtins, aliases): (&[Builtin], &[(&str, &str)]),
    ) -> Result<Source, Error> {
        if kind == WASM_TYPE {
            return take_component_source(what, options);
        }
        if let Some(builtin) = builtin::find(builtins, aliases, kind) {
            return Ok(Source::Builtin(builtin));
        }
        let known: Vec<&str> = builtins.iter().map(|b| b.name).collect();
        if !plugins::valid_name(kind) {
            return Err(Error::Usage(format!(
                "{what}: type {kind:?}: not built-in ({}) and not a valid plugin name (letters, digits, '-', '_', '.'; no '/' or '..')",
                known.join(", ")
            )));
        }
        self.plugins.find(kind).map(Source::File).ok_or_else(|| {
            Error::Usage(format!(
                "{what}: unknown type {kind:?}: not built-in ({}) and no {kind}.wasm in the plugin directories (searched: {}); or type={WASM_TYPE},component=PATH",
                known.join(", "),
                self.plugins.searched()
            ))
        })
    }

    /// The bytes of the component `reference` points at, pulled by the
    /// host (over plain HTTP when `insecure`) or found in the pulled
    /// components' cache under the engine's cache directory.
    fn pull(&self, what: &str, reference: &Reference, insecure: bool) -> Result<Vec<u8>, Error> {
        let client =
            artifact::Client::new(reference.clone(), insecure, what, self.reporter.clone())
                .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
        let cache = self.engine.cache_dir().map(artifact::cache_dir);
        let pulled = artifact::block_on(client.pull(cache.as_deref()))
            .map_err(|e| Error::Usage(format!("{what}: ref {reference}: {e}")))?
            .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
        artifact::log_pulled(self.reporter.as_ref(), what, reference, &pulled);
        Ok(pulled.bytes)
    }

    /// Exports `image` to every output concurrently and returns each
    /// instance's result, in the order of `outputs`: [`Session::prepare`]
    /// then [`Session::run`].
    pub async fn export(
        &self,
        image: Arc<Image>,
        outputs: &[OutputSpec],
    ) -> Result<SessionResult, Error> {
        let plan = self.prepare(outputs)?;
        self.run(image, plan).await
    }

    /// Runs a prepared plan on `image`, every instance concurrently.
    pub async fn run(&self, image: Arc<Image>, plan: Plan) -> Result<SessionResult, Error> {
        self.run_with_cache(Some(image), plan, CachePlan::default(), None)
            .await
    }

    /// Runs a prepared plan on `image` and the cache instances of `cache`
    /// on `source` (for exports), every instance concurrently. `image` may
    /// be `None` only when `plan` is empty (a cache import).
    pub async fn run_with_cache(
        &self,
        image: Option<Arc<Image>>,
        plan: Plan,
        cache: CachePlan,
        source: Option<CacheSource>,
    ) -> Result<SessionResult, Error> {
        let (plan, choices): (Vec<_>, Vec<_>) = plan
            .instances
            .into_iter()
            .map(|(spec, component, choice)| ((spec, component), choice))
            .unzip();
        let variants = match (&image, plan.is_empty()) {
            (_, true) => None,
            (Some(image), false) => Some(buildinfo::Variants::compute(
                image,
                &self.build_info,
                &choices,
            )?),
            (None, false) => return Err(Error::Usage("outputs need an input image".into())),
        };
        let caches = cache_images(&cache, source.as_ref())?;
        let mut slots: Vec<Option<InstanceResult>> = vec![None; plan.len() + cache.instances.len()];
        let mut pending: Vec<(String, String, Option<String>)> = Vec::with_capacity(slots.len());
        let mut ignored: Vec<bool> = vec![false; plan.len()];
        let mut tasks = JoinSet::new();
        // Every instance gets its share of the open-file limit.
        let share = crate::sandbox::descriptors::raise_open_file_limit()
            .map(|limit| crate::sandbox::descriptors::share(limit, slots.len()));
        let fit = |spec: &mut InstanceSpec| {
            if let Some(share) = share
                && share.handles < spec.limits.resources
            {
                spec.limits.resources = share.handles;
                spec.limits.descriptors = Some(share);
            }
        };
        let context = Arc::new(RunContext {
            source_date_epoch: self.source_date_epoch,
            ..RunContext::default()
        });
        // Hashes blobs on a spare core while the instances copy them; stops
        // when the run ends (dropped with this function's locals).
        let _ahead = match (&image, plan.is_empty()) {
            (Some(image), false) => VerifyAhead::start(Arc::clone(image)),
            _ => None,
        };
        for (index, (mut spec, component)) in plan.into_iter().enumerate() {
            fit(&mut spec);
            let engine = self.engine.wasmtime().clone();
            let Some(variants) = &variants else { break };
            let image = variants.image(&choices[index]);
            let reporter = self.reporter.clone();
            let context = context.clone();
            pending.push((spec.id.clone(), spec.kind.clone(), spec.dest.clone()));
            tasks.spawn(async move {
                let result =
                    instance::run(&engine, &component, image, spec, reporter, context).await;
                (index, result)
            });
        }
        for instance in cache.instances {
            let index = pending.len();
            let engine = self.engine.wasmtime().clone();
            let reporter = self.reporter.clone();
            let mut spec = instance.spec;
            fit(&mut spec);
            let (role, image) = match cache.operation {
                CacheOperation::ExportCache => (
                    Role::CacheExport(instance.backend),
                    caches.get(&instance.choice.mode).cloned(),
                ),
                CacheOperation::ImportCache => (
                    Role::CacheImport(instance.backend, instance.choice.src),
                    None,
                ),
            };
            let context = context.clone();
            ignored.push(instance.choice.ignore_error);
            pending.push((spec.id.clone(), spec.kind.clone(), spec.dest.clone()));
            tasks.spawn(async move {
                let result = instance::run_as(&engine, &role, image, spec, reporter, context).await;
                (index, result)
            });
        }
        let mut first_failure: Option<String> = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((index, mut result)) = joined else {
                // Cancelled by --fail-fast, or the task panicked: filled in below.
                continue;
            };
            if !result.is_ok() && !ignored[index] && first_failure.is_none() {
                first_failure = Some(result.id.clone());
                if self.fail_fast {
                    tasks.abort_all();
                }
            }
            if result.is_ok()
                && let Some(variants) = &variants
                && index < choices.len()
            {
                variants.respond(&choices[index], &mut result.response);
            }
            slots[index] = Some(result);
        }
        let mut results: Vec<InstanceResult> = slots
            .into_iter()
            .zip(pending)
            .map(|(slot, (id, kind, dest))| {
                slot.unwrap_or_else(|| {
                    let why = match &first_failure {
                        Some(failed) if self.fail_fast => {
                            format!("cancelled because instance {failed:?} failed (--fail-fast)")
                        }
                        _ => "the instance's task ended abnormally".to_string(),
                    };
                    InstanceResult {
                        id,
                        kind,
                        status: Status::Failed(Failure::new(FailureKind::Cancelled, why)),
                        response: BTreeMap::new(),
                        dest,
                        elapsed: Default::default(),
                    }
                })
            })
            .collect();
        let cache = results
            .split_off(choices.len())
            .into_iter()
            .zip(ignored.split_off(choices.len()))
            .map(|(instance, ignore_error)| CacheResult {
                instance,
                ignore_error,
            })
            .collect();
        Ok(SessionResult {
            exporters: results,
            cache,
        })
    }
}

/// A component found for an instance: its name (a built-in's, or the
/// file's path), bytes, digest, and the limits the policy gives it.
struct Resolved {
    name: String,
    /// The name the policy knows it by: a built-in's name, or a
    /// component file's name without `.wasm`.
    policy_name: String,
    /// Not built in: compiled in a bounded child process, pinned by policy.
    third_party: bool,
    /// What it may reach when the policy does not say.
    reach: Reach,
    wasm: Cow<'static, [u8]>,
    digest: String,
    limits: Limits,
}

impl Session {
    /// The component `resolved`: from `loaded` (keyed by digest, so a file
    /// named like a built-in is not mistaken for it), else compiled (a
    /// third-party component in a bounded child process, its imports
    /// checked against what the sandbox grants (`wasi:http` only with
    /// `network`)), and linked by `link`; remembered, so each component is
    /// compiled and linked once per run.
    fn load_once<T: Clone>(
        &self,
        loaded: &mut HashMap<String, T>,
        resolved: &Resolved,
        network: bool,
        link: impl FnOnce(&str, Compiled) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Some(found) = loaded.get(&resolved.digest) {
            return Ok(found.clone());
        }
        let name = &resolved.name;
        let origin = if resolved.third_party {
            Origin::ThirdParty(CompileLimits::from(&resolved.limits))
        } else {
            Origin::BuiltIn
        };
        let compiled = self.engine.compile(name, &resolved.wasm, &origin)?;
        // Built-ins are part of the binary; what they import is by design.
        let extra = self
            .policy
            .imports_for(&resolved.policy_name, &resolved.digest);
        let grants = imports::Grants {
            network,
            imports: &extra,
        };
        if resolved.third_party
            && let Some(import) =
                imports::first_denied(self.engine.wasmtime(), &compiled.component, grants)
        {
            let hint = imports::how_to_grant(&import, &resolved.policy_name);
            return Err(Error::Import(name.clone(), import, hint));
        }
        let component = link(name, compiled)?;
        loaded.insert(resolved.digest.clone(), component.clone());
        Ok(component)
    }

    /// The hosts the instance `what` of `resolved` with `options` may
    /// reach, and the S3 endpoint whose requests the host signs: see
    /// [`reach::network`].
    fn network(
        &self,
        what: &str,
        resolved: &Resolved,
        options: &[(String, String)],
    ) -> Result<
        (
            crate::sandbox::allow_list::AllowList,
            Option<crate::outbound::sigv4::S3Signing>,
        ),
        Error,
    > {
        let configured = self
            .policy
            .network_for(&resolved.policy_name, &resolved.digest);
        reach::network(
            what,
            (resolved.reach, &resolved.policy_name),
            configured,
            options,
        )
    }
}

/// The image each cache mode presents to the cache instances of `plan`.
fn cache_images(
    plan: &CachePlan,
    source: Option<&CacheSource>,
) -> Result<HashMap<Mode, Arc<Image>>, Error> {
    let mut images = HashMap::new();
    if plan.operation != CacheOperation::ExportCache {
        return Ok(images);
    }
    for instance in &plan.instances {
        let mode = instance.choice.mode;
        if images.contains_key(&mode) {
            continue;
        }
        let cache = match source {
            Some(CacheSource::Image(image)) => Cache::from_image(image, mode)?,
            Some(CacheSource::Cache(cache)) => cache.clone().with_mode(mode),
            None => {
                return Err(Error::Usage(
                    "a cache export needs a cache or an image".into(),
                ));
            }
        };
        images.insert(mode, Arc::new(cache.to_image()));
    }
    Ok(images)
}

/// What a cache export stores.
#[derive(Clone, Debug)]
pub enum CacheSource {
    /// The cache derived from an image's layers.
    Image(Arc<Image>),
    /// A cache read from a BuildKit cache directory.
    Cache(Cache),
}

/// Cache instances checked and loaded by [`Session::prepare_cache`].
pub struct CachePlan {
    instances: Vec<CacheInstance>,
    operation: CacheOperation,
}

impl Default for CachePlan {
    fn default() -> Self {
        CachePlan {
            instances: Vec::new(),
            operation: CacheOperation::ExportCache,
        }
    }
}

impl CachePlan {
    /// The instance IDs, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.instances.iter().map(|i| i.spec.id.as_str())
    }
}

struct CacheInstance {
    spec: InstanceSpec,
    backend: LoadedCacheBackend,
    choice: CacheChoice,
}

/// The runtime's own options of a cache instance.
#[derive(Clone, Debug, Default)]
struct CacheChoice {
    mode: Mode,
    ignore_error: bool,
    src: Option<PathBuf>,
}

impl CacheChoice {
    /// Takes `mode=`, `ignore-error=` and (imports) `src=` out of `options`.
    fn take(
        what: &str,
        options: &mut Vec<(String, String)>,
        operation: CacheOperation,
    ) -> Result<CacheChoice, Error> {
        let mut choice = CacheChoice::default();
        let mut seen: Vec<String> = Vec::new();
        let mut error = None;
        let import = operation == CacheOperation::ImportCache;
        options.retain(|(k, v)| {
            let bad = |m: String| Some(format!("{what}: {m}"));
            let problem = match k.as_str() {
                _ if seen.contains(k) && matches!(k.as_str(), "mode" | "ignore-error" | "src") => {
                    bad(format!("{k}= is given more than once"))
                }
                "mode" if !import => match Mode::parse(v) {
                    Some(m) => {
                        choice.mode = m;
                        None
                    }
                    None => bad(format!("mode={v:?}: expected min or max")),
                },
                "ignore-error" => match v.as_str() {
                    "true" => {
                        choice.ignore_error = true;
                        None
                    }
                    "false" => None,
                    _ => bad(format!("ignore-error={v:?}: expected true or false")),
                },
                "src" if import => {
                    choice.src = Some(PathBuf::from(v));
                    None
                }
                _ => return true,
            };
            seen.push(k.clone());
            if let Some(p) = problem {
                error.get_or_insert(p);
            }
            false
        });
        match error {
            Some(e) => Err(Error::Usage(e)),
            None => Ok(choice),
        }
    }
}

/// The name a policy knows a component file by: its file name without
/// `.wasm`.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Where an output's component comes from.
enum Source {
    /// A built-in exporter, embedded in the binary.
    Builtin(Builtin),
    /// A component file (`type=wasm,component=PATH` or a plugin): third-party.
    File(PathBuf),
    /// A component in a registry (`type=wasm,ref=REF`, plain HTTP with
    /// `registry.insecure=true`): third-party.
    Ref(Reference, bool),
}

/// The `type=` of a component given by path.
pub const WASM_TYPE: &str = "wasm";

/// Takes the host-owned options of a `type=wasm` instance (`what` names it
/// in errors): `component=PATH`, or `ref=REF` and `registry.insecure=`.
fn take_component_source(what: &str, options: &mut Vec<(String, String)>) -> Result<Source, Error> {
    let mut taken: Vec<(String, String)> = Vec::new();
    options.retain(|(k, v)| {
        let ours = matches!(k.as_str(), "component" | "ref" | REF_INSECURE);
        if ours {
            taken.push((k.clone(), v.clone()));
        }
        !ours
    });
    let usage = |m: String| Error::Usage(format!("{what}: {m}"));
    for key in ["component", "ref", REF_INSECURE] {
        if taken.iter().filter(|(k, _)| k == key).count() > 1 {
            return Err(usage(format!("{key}= is given more than once")));
        }
    }
    let get = |key: &str| {
        taken
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let insecure = match get(REF_INSECURE) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(usage(format!(
                "{REF_INSECURE}={other:?}: expected true or false"
            )));
        }
    };
    match (get("component"), get("ref")) {
        (Some(path), None) if get(REF_INSECURE).is_none() => Ok(Source::File(path.into())),
        (Some(_), None) => Err(usage(format!(
            "{REF_INSECURE}= goes with ref=, not component="
        ))),
        (None, Some(reference)) => Reference::parse(reference)
            .map(|r| Source::Ref(r, insecure))
            .map_err(|e| usage(e.to_string())),
        (Some(_), Some(_)) => Err(usage(
            "give component=PATH or ref=REF, not both".to_string(),
        )),
        (None, None) => Err(usage(format!(
            "type={WASM_TYPE} needs component=PATH or ref=HOST[:PORT]/REPO:TAG"
        ))),
    }
}

/// The option of a `type=wasm,ref=` instance that pulls over plain HTTP.
const REF_INSECURE: &str = "registry.insecure";
