//! The instances of a run as concurrent tasks: each spawned with its share
//! of the open-file limit, joined as they end, the others cancelled on the
//! first failure with `--fail-fast`, and the results put back in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use outport_image::Image;

use crate::instance::{self, Failure, FailureKind, InstanceResult, InstanceSpec, Role, Status};
use crate::run::context::RunContext;
use crate::run::reporter::Reporter;
use crate::sandbox::descriptors::{self, DescriptorShare};

/// One instance ready to run.
pub(super) struct Launch {
    pub(super) spec: InstanceSpec,
    pub(super) role: Role,
    /// The image it is given (a cache import has none).
    pub(super) image: Option<Arc<Image>>,
    /// `ignore-error=true`: its failure does not fail the run (nor cancel
    /// the others).
    pub(super) ignore_error: bool,
}

/// An instance spawned: what its result says if its task never returns.
struct Spawned {
    id: String,
    kind: String,
    dest: Option<String>,
    load: bool,
    ignore_error: bool,
}

/// The running instances of one run.
pub(super) struct Tasks {
    set: JoinSet<(usize, InstanceResult)>,
    spawned: Vec<Spawned>,
    share: Option<DescriptorShare>,
    engine: wasmtime::Engine,
    reporter: Arc<dyn Reporter>,
    context: Arc<RunContext>,
}

impl Tasks {
    /// Room for `count` instances on `engine`, each getting its share of
    /// the open-file limit (raised first).
    pub(super) fn new(
        engine: wasmtime::Engine,
        reporter: Arc<dyn Reporter>,
        context: Arc<RunContext>,
        count: usize,
    ) -> Tasks {
        let share =
            descriptors::raise_open_file_limit().map(|limit| descriptors::share(limit, count));
        Tasks {
            set: JoinSet::new(),
            spawned: Vec::with_capacity(count),
            share,
            engine,
            reporter,
            context,
        }
    }

    /// Starts `launch`, its handles cut to its share of the open-file
    /// limit when that is lower.
    pub(super) fn spawn(&mut self, launch: Launch) {
        let Launch {
            mut spec,
            role,
            image,
            ignore_error,
        } = launch;
        if let Some(share) = self.share
            && share.handles < spec.limits.resources
        {
            spec.limits.resources = share.handles;
            spec.limits.descriptors = Some(share);
        }
        let index = self.spawned.len();
        self.spawned.push(Spawned {
            id: spec.id.clone(),
            kind: spec.kind.clone(),
            dest: spec.dest.clone(),
            load: spec.load,
            ignore_error,
        });
        let engine = self.engine.clone();
        let reporter = self.reporter.clone();
        let context = self.context.clone();
        self.set.spawn(async move {
            let result = instance::run_as(&engine, &role, image, spec, reporter, context).await;
            (index, result)
        });
    }

    /// Waits for every instance and returns each one's result with its
    /// `ignore_error`, in the order spawned; `respond` completes the
    /// response of each successful one (by index). With `fail_fast` the
    /// first failure not ignored cancels the others.
    pub(super) async fn join(
        mut self,
        fail_fast: bool,
        mut respond: impl FnMut(usize, &mut BTreeMap<String, String>),
    ) -> Vec<(InstanceResult, bool)> {
        let mut slots: Vec<Option<InstanceResult>> = vec![None; self.spawned.len()];
        let mut first_failure: Option<String> = None;
        while let Some(joined) = self.set.join_next().await {
            let Ok((index, mut result)) = joined else {
                // Cancelled by --fail-fast, or the task panicked: filled in below.
                continue;
            };
            if !result.is_ok() && !self.spawned[index].ignore_error && first_failure.is_none() {
                first_failure = Some(result.id.clone());
                if fail_fast {
                    self.set.abort_all();
                }
            }
            if result.is_ok() {
                respond(index, &mut result.response);
            }
            slots[index] = Some(result);
        }
        let why = match &first_failure {
            Some(failed) if fail_fast => {
                format!("cancelled because instance {failed:?} failed (--fail-fast)")
            }
            _ => "the instance's task ended abnormally".to_string(),
        };
        slots
            .into_iter()
            .zip(self.spawned)
            .map(|(slot, spawned)| {
                let ignore_error = spawned.ignore_error;
                let result = slot.unwrap_or_else(|| InstanceResult {
                    id: spawned.id,
                    kind: spawned.kind,
                    status: Status::Failed(Failure::new(FailureKind::Cancelled, why.clone())),
                    response: BTreeMap::new(),
                    dest: spawned.dest,
                    load: spawned.load,
                    elapsed: Default::default(),
                });
                (result, ignore_error)
            })
            .collect()
    }
}
