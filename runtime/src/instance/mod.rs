//! Running one instance: a fresh store with its own limits, `validate`,
//! the granted destination, `export`, and atomic placement of the output.

pub mod failure;
mod guest;
mod load;
mod place;
mod response;
pub(crate) mod state;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outport_image::Image;

use crate::engine::{LoadedCacheBackend, LoadedComponent};
use crate::host::stdio::GuestLog;
use crate::outbound::signing::Signing;
use crate::output::destination::Staging;
use crate::run::context::RunContext;
use crate::run::reporter::Reporter;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;
pub use failure::{Failure, FailureKind};
use guest::{Phase, execute};
use place::{clean_up, place};
pub use store::{describe, describe_cache_backend, instantiate_bare};

/// Longest failure message kept.
const MAX_MESSAGE: usize = 8 << 10;

/// Everything needed to run one instance.
#[derive(Clone, Debug)]
pub struct InstanceSpec {
    /// Instance ID (`id=` or the output's index).
    pub id: String,
    /// Exporter type (`type=`).
    pub kind: String,
    /// Destination (`dest=`), if given.
    pub dest: Option<String>,
    /// Whether the file output is loaded into the docker daemon (`load`;
    /// a `docker` output without `dest=`), after `dest=` when both.
    pub load: bool,
    /// Options passed to the component.
    pub options: Vec<(String, String)>,
    /// Limits for this instance.
    pub limits: Limits,
    /// Hosts it may reach through `wasi:http` (empty: none).
    pub network: AllowList,
    /// The storage endpoint whose requests the host signs (the `s3` and
    /// `azblob` cache backends), if any.
    pub signing: Option<Signing>,
}

/// How an instance ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// The export succeeded and its output is in place.
    Ok,
    /// The instance failed; its destination holds nothing new.
    Failed(Failure),
}

/// One instance's result.
#[derive(Clone, Debug)]
pub struct InstanceResult {
    /// Instance ID.
    pub id: String,
    /// Exporter type.
    pub kind: String,
    /// Ok, or the one-line cause of the failure.
    pub status: Status,
    /// Response keys (guest entries plus host-owned ones), sorted by key.
    pub response: BTreeMap<String, String>,
    /// Where the output went (`dest=`), if anywhere.
    pub dest: Option<String>,
    /// Whether the output was (or was to be) loaded into the docker daemon.
    pub load: bool,
    /// Wall time of the instance.
    pub elapsed: Duration,
}

impl InstanceResult {
    /// True when the instance succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// What an instance runs.
#[derive(Clone)]
pub enum Role {
    /// An image exporter's `export`.
    Export(LoadedComponent),
    /// A cache backend's `export-cache`: its directory destination is staged
    /// starting from what is already there (see [`Staging::seed`]).
    CacheExport(LoadedCacheBackend),
    /// A cache backend's `import-cache`, with the `src=` directory granted
    /// read-only when given; the written layout is verified before it is
    /// moved into place.
    CacheImport(LoadedCacheBackend, Option<PathBuf>),
}

/// Name under which a cache import's `src=` directory is preopened.
pub const SOURCE_PREOPEN: &str = "/src";

/// Runs one instance in `role`, on `image` when it has one (a cache import
/// has none). Never panics on guest behaviour: every failure becomes
/// [`Status::Failed`].
pub async fn run_as(
    engine: &wasmtime::Engine,
    role: &Role,
    image: Option<Arc<Image>>,
    spec: InstanceSpec,
    reporter: Arc<dyn Reporter>,
    context: Arc<RunContext>,
) -> InstanceResult {
    let started = Instant::now();
    // Everything done for the instance, in the guest or in the host on its
    // behalf, ends by this instant.
    let deadline = started + spec.limits.timeout;
    let log = GuestLog::new(reporter.clone(), &spec.id, spec.limits.log_bytes);
    let mut staging: Option<Staging> = None;
    let phase = Phase::default();
    let guest = execute(
        engine,
        role,
        (image, context),
        &spec,
        (reporter.clone(), log.clone()),
        (&mut staging, &phase),
    );
    // The epoch deadline stops running wasm; this stops a guest waiting in
    // a host call (a clock, a stream) and the host's work for it.
    let outcome = match tokio::time::timeout_at(deadline.into(), guest).await {
        Ok(Ok(finished)) => place(role, finished, staging.take(), &spec, deadline).await,
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::time(phase.get(), &spec.limits)),
    };
    let last_words = log.finish();
    let (status, response) = match outcome {
        Ok(response) => (Status::Ok, response),
        Err(failure) => {
            let failure = clean_up(failure, staging.take(), &spec, reporter.as_ref());
            (
                Status::Failed(one_line(failure, last_words)),
                BTreeMap::new(),
            )
        }
    };
    InstanceResult {
        id: spec.id,
        kind: spec.kind,
        status,
        response,
        dest: spec.dest,
        load: spec.load,
        elapsed: started.elapsed(),
    }
}

/// The failure with the guest's last words (a Rust guest's panic message)
/// added, as one line of guest text escaped and cut.
fn one_line(failure: Failure, last_words: Option<String>) -> Failure {
    failure.map_message(|mut message| {
        if let Some(last) = last_words {
            message.push_str(&format!(" (guest output: {last})"));
        }
        let text = crate::sandbox::text::truncate(&message, MAX_MESSAGE);
        crate::sandbox::text::one_line(text).into_owned()
    })
}
