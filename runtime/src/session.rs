//! A session exports one image to several outputs at once. Each output is
//! an instance with its own store, limits and destination; one failing
//! does not affect the others, and each keeps its own response.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::task::JoinSet;

use outport_image::Image;

use crate::buildinfo::{self, BuildInputs};
use crate::builtin;
use crate::compile::CompileLimits;
use crate::engine::{Engine, LoadedComponent, Origin};
use crate::error::Error;
use crate::imports;
use crate::instance::{self, InstanceResult, InstanceSpec, Status};
use crate::limits::Limits;
use crate::options::{OutputSpec, assign_ids};
use crate::policy::Policy;
use crate::report::Reporter;

/// The results of a session, one per output, in the order given.
#[derive(Clone, Debug)]
pub struct SessionResult {
    /// Per-instance results.
    pub exporters: Vec<InstanceResult>,
}

impl SessionResult {
    /// True when every instance succeeded.
    pub fn all_ok(&self) -> bool {
        self.exporters.iter().all(InstanceResult::is_ok)
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
        }
    }

    /// Sets the sandbox policy (see [`crate::policy`]): per-component
    /// limits over the session's, pinning, destination rules.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets what goes into each image config's build info
    /// (`--build-sources`, `--attr`; see [`crate::buildinfo`]).
    pub fn build_info(mut self, inputs: BuildInputs) -> Self {
        self.build_info = inputs;
        self
    }

    /// Cancels the remaining instances as soon as one fails (their
    /// destinations are left untouched).
    pub fn fail_fast(mut self, enable: bool) -> Self {
        self.fail_fast = enable;
        self
    }

    /// Checks the outputs (types known, IDs unique, host-owned options
    /// valid, components pinned as the policy asks) and loads their
    /// components; fails before anything runs. Run the result with
    /// [`Session::run`].
    pub fn prepare(&self, outputs: &[OutputSpec]) -> Result<Plan, Error> {
        let ids = assign_ids(outputs)?;
        let mut loaded: HashMap<String, LoadedComponent> = HashMap::new();
        let mut plan = Vec::new();
        for (spec, id) in outputs.iter().zip(ids) {
            let mut options = spec.options.clone();
            let choice = buildinfo::take_options(&id, &mut options)?;
            let (name, wasm): (String, Cow<'static, [u8]>) = if spec.kind == WASM_TYPE {
                let path = take_component_path(&id, &mut options)?;
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::Usage(format!("output {id}: cannot read component {path}: {e}"))
                })?;
                (path, Cow::Owned(bytes))
            } else {
                let builtin = builtin::exporter(&spec.kind).ok_or_else(|| {
                    let known: Vec<&str> = builtin::EXPORTERS.iter().map(|b| b.name).collect();
                    Error::Usage(format!(
                        "output {id}: unknown exporter type {:?} (built-in: {}; or type={WASM_TYPE},component=PATH)",
                        spec.kind,
                        known.join(", ")
                    ))
                })?;
                (builtin.name.to_string(), Cow::Borrowed(builtin.wasm))
            };
            let digest = outport_image::sha256_digest(&wasm);
            if spec.kind == WASM_TYPE
                && !self.policy.allows_unpinned()
                && !self.policy.is_pinned(&digest)
            {
                return Err(Error::Usage(format!(
                    "output {id}: component {name} is not pinned and the policy has allow-unpinned = false; pin it with [components.\"{digest}\"]"
                )));
            }
            let policy_name = component_name(&spec.kind, &name);
            let limits = self.policy.limits_for(&self.limits, &policy_name, &digest);
            let component = match loaded.get(&name) {
                Some(c) => c.clone(),
                None => {
                    let origin = if spec.kind == WASM_TYPE {
                        Origin::ThirdParty(CompileLimits {
                            timeout: limits.compile_timeout,
                            memory_bytes: limits.compile_memory_bytes,
                        })
                    } else {
                        Origin::BuiltIn
                    };
                    let compiled = self.engine.compile(&name, &wasm, &origin)?;
                    let network = !self.policy.network_hosts(&policy_name, &digest).is_empty();
                    if let Some(import) =
                        imports::first_denied(self.engine.wasmtime(), &compiled.component, network)
                    {
                        return Err(Error::Import(name, import));
                    }
                    let c = self.engine.link(&name, compiled)?;
                    loaded.insert(name, c.clone());
                    c
                }
            };
            let instance = InstanceSpec {
                id,
                kind: spec.kind.clone(),
                dest: spec.dest.clone(),
                options,
                limits,
            };
            plan.push((instance, component, choice));
        }
        Ok(Plan { instances: plan })
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
        let (plan, choices): (Vec<_>, Vec<_>) = plan
            .instances
            .into_iter()
            .map(|(spec, component, choice)| ((spec, component), choice))
            .unzip();
        let variants = buildinfo::Variants::compute(&image, &self.build_info, &choices)?;
        let mut slots: Vec<Option<InstanceResult>> = vec![None; plan.len()];
        let mut pending: Vec<(String, String, Option<String>)> = Vec::with_capacity(plan.len());
        let mut tasks = JoinSet::new();
        for (index, (spec, component)) in plan.into_iter().enumerate() {
            let engine = self.engine.wasmtime().clone();
            let image = variants.image(&choices[index]);
            let reporter = self.reporter.clone();
            pending.push((spec.id.clone(), spec.kind.clone(), spec.dest.clone()));
            tasks.spawn(async move {
                let result = instance::run(&engine, &component, image, spec, reporter).await;
                (index, result)
            });
        }
        let mut first_failure: Option<String> = None;
        while let Some(joined) = tasks.join_next().await {
            let Ok((index, mut result)) = joined else {
                // Cancelled by --fail-fast, or the task panicked: filled in below.
                continue;
            };
            if !result.is_ok() && first_failure.is_none() {
                first_failure = Some(result.id.clone());
                if self.fail_fast {
                    tasks.abort_all();
                }
            }
            if result.is_ok() {
                variants.respond(&choices[index], &mut result.response);
            }
            slots[index] = Some(result);
        }
        let exporters = slots
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
                        status: Status::Failed(why),
                        response: BTreeMap::new(),
                        dest,
                        elapsed: Default::default(),
                    }
                })
            })
            .collect();
        Ok(SessionResult { exporters })
    }
}

/// The name a policy knows a component by: the built-in exporter's name,
/// or a component file's name without `.wasm`.
fn component_name(kind: &str, name: &str) -> String {
    if kind != WASM_TYPE {
        return name.to_string();
    }
    let file = std::path::Path::new(name);
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}

/// The `type=` of a component given by path.
pub const WASM_TYPE: &str = "wasm";

/// Takes the host-owned `component=PATH` option of a `type=wasm` output.
fn take_component_path(id: &str, options: &mut Vec<(String, String)>) -> Result<String, Error> {
    let mut paths: Vec<String> = Vec::new();
    options.retain(|(k, v)| {
        if k == "component" {
            paths.push(v.clone());
            false
        } else {
            true
        }
    });
    match paths.len() {
        1 => Ok(paths.remove(0)),
        0 => Err(Error::Usage(format!(
            "output {id}: type={WASM_TYPE} needs component=PATH"
        ))),
        _ => Err(Error::Usage(format!(
            "output {id}: component= is given more than once"
        ))),
    }
}
