//! A session exports one image to several outputs at once. Each output is
//! an instance with its own store, limits and destination; one failing
//! does not affect the others, and each keeps its own response.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use outport_image::Image;

use crate::builtin;
use crate::engine::{Engine, LoadedComponent};
use crate::error::Error;
use crate::instance::{self, InstanceResult, InstanceSpec};
use crate::limits::Limits;
use crate::options::{OutputSpec, assign_ids};
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

/// Runs exports against one engine.
pub struct Session {
    engine: Arc<Engine>,
    reporter: Arc<dyn Reporter>,
    limits: Limits,
}

impl Session {
    /// A session on `engine`, reporting to `reporter`, with `limits` for
    /// every instance.
    pub fn new(engine: Arc<Engine>, reporter: Arc<dyn Reporter>, limits: Limits) -> Self {
        Session {
            engine,
            reporter,
            limits,
        }
    }

    /// Checks the outputs (types known, IDs unique) and loads their
    /// components; fails before anything runs.
    pub fn prepare(
        &self,
        outputs: &[OutputSpec],
    ) -> Result<Vec<(InstanceSpec, LoadedComponent)>, Error> {
        let ids = assign_ids(outputs)?;
        let mut loaded: HashMap<&str, LoadedComponent> = HashMap::new();
        let mut plan = Vec::new();
        for (spec, id) in outputs.iter().zip(ids) {
            let builtin = builtin::exporter(&spec.kind).ok_or_else(|| {
                let known: Vec<&str> = builtin::EXPORTERS.iter().map(|b| b.name).collect();
                Error::Usage(format!(
                    "output {id}: unknown exporter type {:?} (built-in: {})",
                    spec.kind,
                    known.join(", ")
                ))
            })?;
            let component = match loaded.get(builtin.name) {
                Some(c) => c.clone(),
                None => {
                    let c = self.engine.load(builtin.name, builtin.wasm)?;
                    loaded.insert(builtin.name, c.clone());
                    c
                }
            };
            let instance = InstanceSpec {
                id,
                kind: spec.kind.clone(),
                dest: spec.dest.clone(),
                options: spec.options.clone(),
                limits: self.limits.clone(),
            };
            plan.push((instance, component));
        }
        Ok(plan)
    }

    /// Exports `image` to every output concurrently and returns each
    /// instance's result.
    pub async fn export(
        &self,
        image: Arc<Image>,
        outputs: &[OutputSpec],
    ) -> Result<SessionResult, Error> {
        let plan = self.prepare(outputs)?;
        let mut tasks = Vec::with_capacity(plan.len());
        for (spec, component) in plan {
            let engine = self.engine.wasmtime().clone();
            let image = image.clone();
            let reporter = self.reporter.clone();
            let fallback = (spec.id.clone(), spec.kind.clone(), spec.dest.clone());
            let task = tokio::spawn(async move {
                instance::run(&engine, &component, image, spec, reporter).await
            });
            tasks.push((task, fallback));
        }
        let mut exporters = Vec::with_capacity(tasks.len());
        for (task, (id, kind, dest)) in tasks {
            let result = match task.await {
                Ok(result) => result,
                Err(e) => InstanceResult {
                    id,
                    kind,
                    status: instance::Status::Failed(format!("instance task failed: {e}")),
                    response: BTreeMap::new(),
                    dest,
                    elapsed: Default::default(),
                },
            };
            exporters.push(result);
        }
        Ok(SessionResult { exporters })
    }
}
