//! Running one instance: a fresh store with its own limits, `validate`,
//! the granted destination, `export`, and atomic placement of the output.

pub mod failure;
mod response;
pub(crate) mod state;
mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outport_image::Image;
use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::engine::{LoadedCacheBackend, LoadedComponent};
use crate::host::bindings::types::{CacheOperation, Destination, OutputKind};
use crate::host::http::HttpAccess;
use crate::host::stdio::GuestLog;
use crate::instance::state::{Grants, InstanceState};
use crate::outbound::docker_config::Credentials;
use crate::outbound::sigv4::S3Signing;
use crate::output::destination::PlaceError;
use crate::output::destination::{Checks, PREOPEN, Staging, Target};
use crate::output::tree::Links;
use crate::output::tree::TreeError;
use crate::run::context::RunContext;
use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::{DestinationRule, Limits};
pub use failure::{Failure, FailureKind};
use failure::{guest_error, trap};
use response::collect_response;
use store::new_store;
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
    /// Options passed to the component.
    pub options: Vec<(String, String)>,
    /// Limits for this instance.
    pub limits: Limits,
    /// Hosts it may reach through `wasi:http` (empty: none).
    pub network: AllowList,
    /// The S3 endpoint whose requests the host signs (the `s3` cache
    /// backend), if any.
    pub s3: Option<S3Signing>,
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

/// Runs one instance of `component` on `image`. Never panics on guest
/// behaviour: every failure becomes [`Status::Failed`].
pub async fn run(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
    image: Arc<Image>,
    spec: InstanceSpec,
    reporter: Arc<dyn Reporter>,
    context: Arc<RunContext>,
) -> InstanceResult {
    run_as(
        engine,
        &Role::Export(component.clone()),
        Some(image),
        spec,
        reporter,
        context,
    )
    .await
}

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
        elapsed: started.elapsed(),
    }
}

/// Removes a failed instance's staging directory, saying so when its
/// filesystem is full (then the failure's kind is [`FailureKind::NoSpace`]).
fn clean_up(
    failure: Failure,
    staging: Option<Staging>,
    spec: &InstanceSpec,
    reporter: &dyn Reporter,
) -> Failure {
    let Some(staging) = staging else {
        return failure;
    };
    let failure = if staging.filesystem_full() {
        let dest = spec.dest.as_deref().unwrap_or_default();
        Failure::new(
            FailureKind::NoSpace,
            format!(
                "dest {}: no space left on its filesystem ({})",
                crate::sandbox::text::one_line(dest),
                failure.message
            ),
        )
    } else {
        failure
    };
    let left = staging.discard();
    if !left.is_empty() {
        reporter.log(
            &spec.id,
            LogLevel::Warn,
            &format!("removing the staging directory: {left}"),
        );
    }
    failure
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

/// Which step of an instance is running, for a time limit's message.
#[derive(Default)]
struct Phase(std::sync::Mutex<&'static str>);

impl Phase {
    fn set(&self, phase: &'static str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    fn get(&self) -> &'static str {
        let phase = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        if phase.is_empty() {
            "instantiation"
        } else {
            phase
        }
    }
}

/// What the guest part of an instance ended with.
struct Finished {
    response: BTreeMap<String, String>,
    destination: Option<Destination>,
}

/// Checks the instance's staged output and moves it into place (a cache
/// import's layout verified first), off the async executor and no later
/// than `deadline`.
async fn place(
    role: &Role,
    finished: Finished,
    staging: Option<Staging>,
    spec: &InstanceSpec,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, Failure> {
    let (Some(staging), Some(destination)) = (staging, finished.destination) else {
        return Ok(finished.response);
    };
    let cache = matches!(role, Role::CacheExport(_) | Role::CacheImport(..));
    let import = matches!(role, Role::CacheImport(..));
    let checks = Checks {
        // A root filesystem has symlinks; a cache never does.
        links: if cache { Links::Refuse } else { Links::Keep },
        max_bytes: spec.limits.output_bytes,
        deadline,
    };
    let dest = spec.dest.clone().unwrap_or_default();
    let limits = spec.limits.clone();
    let placed = tokio::task::spawn_blocking(move || {
        if import {
            crate::cache::verify_layout(staging.dir(), Path::new(&dest), deadline).map_err(
                |e| {
                    Failure::new(
                        FailureKind::Output,
                        format!("the imported cache is not valid: {e}"),
                    )
                },
            )?;
        }
        staging.commit(&destination, &checks).map_err(|e| {
            placing_failed(e, &limits)
                .map_message(|m| format!("cannot move the output into place at {dest}: {m}"))
        })
    })
    .await;
    match placed {
        Ok(Ok(())) => Ok(finished.response),
        Ok(Err(failure)) => Err(failure),
        Err(e) => Err(Failure::host(format!("placing the output failed: {e}"))),
    }
}

/// The failure for an output that could not be placed.
fn placing_failed(e: PlaceError, limits: &Limits) -> Failure {
    let kind = match &e {
        PlaceError::Deadline => FailureKind::Limit {
            name: "time",
            value: limits.timeout.as_secs(),
        },
        PlaceError::Tree(TreeError::TooLarge(bytes)) => FailureKind::Limit {
            name: "output",
            value: *bytes,
        },
        PlaceError::Tree(TreeError::Io { .. }) | PlaceError::Io { .. } => FailureKind::Host,
        PlaceError::Tree(_)
        | PlaceError::Missing
        | PlaceError::NotRegular { .. }
        | PlaceError::DirectoryToStdout
        | PlaceError::Changed(_) => FailureKind::Output,
    };
    Failure::new(kind, e.to_string())
}

/// An instantiated component, by world.
enum Instantiated {
    Exporter(crate::host::bindings::Exporter),
    Cache(crate::host::bindings::cache::CacheBackend),
}

/// The guest part of an instance: its staging directory, its store, its
/// `validate`, its destination granted, its `export`.
async fn execute(
    engine: &wasmtime::Engine,
    role: &Role,
    (image, context): (Option<Arc<Image>>, Arc<RunContext>),
    spec: &InstanceSpec,
    (reporter, log): (Arc<dyn Reporter>, GuestLog),
    (staging, phase): (&mut Option<Staging>, &Phase),
) -> Result<Finished, Failure> {
    if let Some(dest) = &spec.dest {
        *staging = Some(
            Staging::create(Target::parse(dest))
                .map_err(|e| Failure::host(format!("cannot prepare dest {dest}: {e}")))?,
        );
    }
    let (wasi, source) = wasi_context(role, log.clone(), staging.as_ref())?;
    let http = http_access(spec, &reporter)?;
    let grants = Grants {
        image,
        run: Some(context.clone()),
        log,
        http,
        reporter,
        instance_id: spec.id.clone(),
    };
    let mut store = new_store(
        engine,
        InstanceState::new(wasi, grants, &spec.limits),
        &spec.limits,
    )?;
    let instantiated = instantiate(role, &mut store, &spec.limits).await?;
    let operation = match role {
        Role::CacheImport(..) => CacheOperation::ImportCache,
        _ => CacheOperation::ExportCache,
    };
    phase.set("validate");
    let destination = validate(&instantiated, operation, &mut store, spec, role, staging).await?;
    let request = crate::host::bindings::types::Request {
        options: spec.options.clone(),
        destination: destination.clone(),
        instance_id: spec.id.clone(),
        host_platform: crate::host::platform::host_platform(),
        source_date_epoch: context.source_date_epoch,
    };
    let entries = call(
        &instantiated,
        operation,
        store,
        (&request, source),
        spec,
        phase,
    )
    .await?;
    phase.set("placing the output");
    Ok(Finished {
        response: collect_response(entries)?,
        destination,
    })
}

/// The instance's WASI context (deny by default: no environment,
/// arguments, stdin or sockets; stdout/stderr as log lines; its staging
/// directory and, for a cache import, `src=` read-only), and the name the
/// source is preopened under.
fn wasi_context(
    role: &Role,
    log: GuestLog,
    staging: Option<&Staging>,
) -> Result<(wasmtime_wasi::WasiCtx, Option<String>), Failure> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(log.stdio(0))
        .stderr(log.stdio(1))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(true);
    if let Some(staging) = staging {
        wasi.preopened_dir(staging.path(), PREOPEN, FsPerms::ReadWrite)
            .map_err(|e| Failure::host(format!("cannot grant the staging directory: {e:#}")))?;
    }
    let mut source = None;
    if let Role::CacheImport(_, Some(src)) = role {
        if !src.is_dir() {
            return Err(Failure::host(format!(
                "src {} is not a directory",
                src.display()
            )));
        }
        wasi.preopened_dir(src, SOURCE_PREOPEN, FsPerms::ReadOnly)
            .map_err(|e| Failure::host(format!("cannot grant src {}: {e:#}", src.display())))?;
        source = Some(SOURCE_PREOPEN.to_string());
    }
    Ok((wasi.build(), source))
}

/// The instance's outbound HTTP: denied, or its allow-list with the host's
/// credentials (and S3 signing for the `s3` cache backend).
fn http_access(spec: &InstanceSpec, reporter: &Arc<dyn Reporter>) -> Result<HttpAccess, Failure> {
    if spec.network.is_empty() {
        return Ok(HttpAccess::denied(&spec.id, reporter.clone()));
    }
    let credentials = Credentials::load()
        .map_err(|e| Failure::host(format!("cannot read registry credentials: {e}")))?;
    let access = HttpAccess::new(
        &spec.id,
        spec.network.clone(),
        credentials,
        &spec.limits,
        reporter.clone(),
    );
    Ok(match &spec.s3 {
        Some(signing) => access.with_s3_signing(signing.clone()),
        None => access,
    })
}

/// Instantiates the component of `role` in `store`.
async fn instantiate(
    role: &Role,
    store: &mut Store<InstanceState>,
    limits: &Limits,
) -> Result<Instantiated, Failure> {
    match role {
        Role::Export(component) => component
            .pre
            .instantiate_async(&mut *store)
            .await
            .map(Instantiated::Exporter),
        Role::CacheExport(backend) | Role::CacheImport(backend, _) => backend
            .pre
            .instantiate_async(&mut *store)
            .await
            .map(Instantiated::Cache),
    }
    .map_err(|e| trap("instantiation", &e, store, limits))
}

/// Calls `validate`, checks the output kind against the policy and the
/// destination, and grants the destination (a cache export's staged from
/// what is already there).
async fn validate(
    instantiated: &Instantiated,
    operation: CacheOperation,
    store: &mut Store<InstanceState>,
    spec: &InstanceSpec,
    role: &Role,
    staging: &mut Option<Staging>,
) -> Result<Option<Destination>, Failure> {
    let kind = match instantiated {
        Instantiated::Exporter(e) => e.call_validate(&mut *store, &spec.options).await,
        Instantiated::Cache(c) => c.call_validate(&mut *store, &spec.options, operation).await,
    }
    .map_err(|e| trap("validate", &e, store, &spec.limits))?
    .map_err(guest_error)?;
    let allowed = match (spec.limits.destination, kind) {
        (DestinationRule::Directory, OutputKind::File) => Some("directory"),
        (DestinationRule::File, OutputKind::Directory) => Some("file"),
        _ => None,
    };
    if let Some(allowed) = allowed {
        return Err(Failure::new(
            FailureKind::Policy,
            format!("the policy lets this component write only a {allowed} destination"),
        ));
    }
    let destination = match (staging.as_ref(), kind) {
        (None, OutputKind::None) => None,
        (None, _) => {
            return Err(Failure::new(
                FailureKind::Guest("invalid-option"),
                "this exporter needs a destination: add dest=PATH",
            ));
        }
        (Some(staging), kind) => Some(
            staging
                .grant(kind)
                .map_err(|e| Failure::host(e.to_string()))?,
        ),
    };
    if let (Role::CacheExport(_), Some(staging), OutputKind::Directory) =
        (role, staging.as_mut(), kind)
    {
        staging.seed().map_err(|e| {
            Failure::host(format!(
                "cannot stage the existing cache at the destination: {e}"
            ))
        })?;
    }
    Ok(destination)
}

/// Calls the instance's `export` (or `export-cache`, `import-cache`) and
/// returns its entries; a damaged input blob the guest went on after fails
/// it.
async fn call(
    instantiated: &Instantiated,
    operation: CacheOperation,
    mut store: Store<InstanceState>,
    (request, source): (&crate::host::bindings::types::Request, Option<String>),
    spec: &InstanceSpec,
    phase: &Phase,
) -> Result<Vec<crate::host::bindings::types::ResponseEntry>, Failure> {
    let http = store.data().http.clone();
    let damaged = store.data().image.damaged.clone();
    let phase_name = match (instantiated, operation) {
        (Instantiated::Exporter(_), _) => "export",
        (Instantiated::Cache(_), CacheOperation::ExportCache) => "export-cache",
        (Instantiated::Cache(_), CacheOperation::ImportCache) => "import-cache",
    };
    phase.set(phase_name);
    let called = match (instantiated, operation) {
        (Instantiated::Exporter(e), _) => e.call_export(&mut store, request).await,
        (Instantiated::Cache(c), CacheOperation::ExportCache) => {
            c.call_export_cache(&mut store, request).await
        }
        (Instantiated::Cache(c), CacheOperation::ImportCache) => {
            c.call_import_cache(&mut store, request, source.as_deref())
                .await
        }
    };
    let hit = store.data().image.limit_hit.clone();
    let entries = called
        .map_err(|e| trap(phase_name, &e, &store, &spec.limits))?
        .map_err(|e| {
            let failure = match hit {
                // A limit a host call reached is the cause, whatever error
                // the guest made of it.
                Some(hit) => Failure {
                    kind: FailureKind::Limit {
                        name: hit.name,
                        value: hit.value,
                    },
                    ..guest_error(e)
                },
                None => guest_error(e),
            };
            match http.problem() {
                // What the host saw (a refused host, missing credentials)
                // explains the guest's error.
                Some(problem) => failure.map_message(|m| format!("{m} (host: {problem})")),
                None => failure,
            }
        })?;
    drop(store);
    if let Some(damage) = damaged.get() {
        return Err(Failure::new(
            FailureKind::DamagedInput,
            format!("{damage} (the component went on after this error; its output is discarded)"),
        ));
    }
    Ok(entries)
}
