//! A session exports one image to several outputs at once. Each output is
//! an instance with its own store, limits and destination; one failing
//! does not affect the others, and each keeps its own response.

mod resolve;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use outport_image::Image;

use crate::buildinfo::{self, BuildInputs};
use crate::components::builtin::{self, Builtin};
use crate::components::plugins::PluginDirs;
use crate::engine::{Compiled, Engine, LoadedCacheBackend, LoadedComponent};
use crate::error::Error;
use crate::host::bindings::types::CacheOperation;
use crate::image::ahead::VerifyAhead;
use crate::instance::{InstanceResult, InstanceSpec, Role};
use crate::run::cache_plan::{CacheChoice, CacheInstance, CachePlan, CacheSource, cache_images};
use crate::run::context::{ImageSource, RunContext};
use crate::run::output_spec::{OutputSpec, assign_ids, assign_ids_with, take_load};
use crate::run::reporter::Reporter;
use crate::run::tasks::{Launch, Tasks};
use crate::sandbox::limits::Limits;
use crate::sandbox::policy::Policy;

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
    image_source: Option<ImageSource>,
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
            image_source: None,
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

    /// Sets the registry repository the input image was pulled from, which
    /// exporters may mount its layers from (`image.source`; default: none).
    pub fn image_source(mut self, source: Option<ImageSource>) -> Self {
        self.image_source = source;
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
            let load = take_load(spec, &mut options)?;
            if spec.kind == builtin::IMAGE_ALIAS && !options.iter().any(|(k, _)| k == "push") {
                // The exporter refuses it: outport keeps no image store.
                options.push(("push".to_string(), "false".to_string()));
            }
            let (mut instance, component) = self.instance(
                (&format!("output {id}"), id),
                spec,
                options,
                (builtin::EXPORTERS, builtin::EXPORTER_ALIASES),
                (&mut loaded, |n, c| self.engine.link(n, c)),
            )?;
            instance.load = load;
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
            let (spec, backend) = self.instance(
                (&what, id),
                spec,
                options,
                (builtin::CACHE_BACKENDS, &[]),
                (&mut loaded, |n, c| self.engine.link_cache_backend(n, c)),
            )?;
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

    /// The instance `id` (named `what` in errors) of `spec`, with `options`
    /// (the runtime's own taken out), and its component found among
    /// `builtins` or elsewhere, checked, and loaded once per run (`loaded`,
    /// linked by `link`), with the limits and network the policy gives it.
    fn instance<T: Clone>(
        &self,
        (what, id): (&str, String),
        spec: &OutputSpec,
        mut options: Vec<(String, String)>,
        builtins: (&[Builtin], &[(&str, &str)]),
        (loaded, link): (
            &mut HashMap<String, T>,
            impl FnOnce(&str, Compiled) -> Result<T, Error>,
        ),
    ) -> Result<(InstanceSpec, T), Error> {
        let resolved = self.resolve(what, &spec.kind, &mut options, builtins)?;
        let (network, signing) = self.network(what, &resolved, &mut options)?;
        let component = self.load_once(loaded, &resolved, !network.is_empty(), link)?;
        let instance = InstanceSpec {
            id,
            kind: spec.kind.clone(),
            dest: spec.dest.clone(),
            load: false,
            options,
            limits: resolved.limits,
            network,
            signing,
        };
        Ok((instance, component))
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
        let context = Arc::new(RunContext {
            source_date_epoch: self.source_date_epoch,
            image_source: self.image_source.clone(),
            ..RunContext::default()
        });
        let count = plan.len() + cache.instances.len();
        let mut tasks = Tasks::new(
            self.engine.wasmtime().clone(),
            self.reporter.clone(),
            context,
            count,
        );
        // Hashes blobs on a spare core while the instances copy them; stops
        // when the run ends (dropped with this function's locals).
        let _ahead = match (&image, plan.is_empty()) {
            (Some(image), false) => VerifyAhead::start(Arc::clone(image)),
            _ => None,
        };
        if let Some(variants) = &variants {
            for ((spec, component), choice) in plan.into_iter().zip(&choices) {
                tasks.spawn(Launch {
                    spec,
                    role: Role::Export(component),
                    image: Some(variants.image(choice)),
                    ignore_error: false,
                });
            }
        }
        for instance in cache.instances {
            tasks.spawn(instance.launch(cache.operation, &caches));
        }
        let mut results = tasks
            .join(self.fail_fast, |index, response| {
                if let Some(variants) = &variants
                    && index < choices.len()
                {
                    variants.respond(&choices[index], response);
                }
            })
            .await;
        let cache = results
            .split_off(choices.len())
            .into_iter()
            .map(|(instance, ignore_error)| CacheResult {
                instance,
                ignore_error,
            })
            .collect();
        Ok(SessionResult {
            exporters: results.into_iter().map(|(result, _)| result).collect(),
            cache,
        })
    }
}
