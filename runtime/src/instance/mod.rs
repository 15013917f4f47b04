//! Running one instance: a fresh store with its own limits, `validate`,
//! the granted destination, `export`, and atomic placement of the output.

pub(crate) mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outport_image::Image;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::engine::{LoadedCacheBackend, LoadedComponent};
use crate::host::bindings::types::{CacheOperation, Destination, Error as GuestError, OutputKind};
use crate::host::http::HttpAccess;
use crate::host::stdio::GuestLog;
use crate::instance::state::{Grants, InstanceState};
use crate::outbound::docker_config::Credentials;
use crate::outbound::sigv4::S3Signing;
use crate::output::destination::{Checks, PREOPEN, Staging, Target};
use crate::output::tree::Links;
use crate::run::context::RunContext;
use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::{DestinationRule, Limits};

/// Epoch ticks (see [`crate::engine::EPOCH_TICK`]) between two yields of a
/// running guest.
const YIELD_TICKS: u64 = 10;

/// Bytes a guest may pass to the host in one call (arguments of an import,
/// or the result of `export`), counted as wasmtime lifts them: above the
/// largest `put-blob`, far below what would strain the host. Strings
/// pointing at the same guest bytes are counted each time, so a response
/// cannot multiply guest memory into host memory.
pub const TRANSFER_LIMIT: usize = crate::host::image::MAX_INLINE_BLOB as usize + (1 << 20);

/// Longest failure message kept.
const MAX_MESSAGE: usize = 8 << 10;

/// Most entries in a response.
const MAX_RESPONSE_ENTRIES: usize = 1024;

/// Most bytes (keys and values) in a response.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

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
    Failed(String),
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
        Ok(Err(message)) => Err(message),
        Err(_) => Err(format!(
            "{}: time limit of {} s exceeded",
            phase.get(),
            spec.limits.timeout.as_secs()
        )),
    };
    let last_words = log.finish();
    let (status, response) = match outcome {
        Ok(response) => (Status::Ok, response),
        Err(mut message) => {
            if let Some(staging) = staging.take() {
                if staging.filesystem_full() {
                    let dest = spec.dest.as_deref().unwrap_or_default();
                    message = format!(
                        "dest {}: no space left on its filesystem ({message})",
                        crate::sandbox::text::one_line(dest)
                    );
                }
                let left = staging.discard();
                if !left.is_empty() {
                    reporter.log(
                        &spec.id,
                        LogLevel::Warn,
                        &format!("removing the staging directory: {left}"),
                    );
                }
            }
            // The guest's last words (a Rust guest's panic message).
            if let Some(last) = last_words {
                message.push_str(&format!(" (guest output: {last})"));
            }
            // Guest text (its errors, trap causes, last words) as one line.
            let message = crate::sandbox::text::one_line(crate::sandbox::text::truncate(
                &message,
                MAX_MESSAGE,
            ));
            (Status::Failed(message.into_owned()), BTreeMap::new())
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
) -> Result<BTreeMap<String, String>, String> {
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
    let placed = tokio::task::spawn_blocking(move || {
        if import {
            crate::cache::verify_layout(staging.dir(), Path::new(&dest), deadline)
                .map_err(|e| format!("the imported cache is not valid: {e}"))?;
        }
        staging
            .commit(&destination, &checks)
            .map_err(|e| format!("cannot move the output into place at {dest}: {e}"))
    })
    .await;
    match placed {
        Ok(Ok(())) => Ok(finished.response),
        Ok(Err(message)) => Err(message),
        Err(e) => Err(format!("placing the output failed: {e}")),
    }
}

/// An instantiated component, by world.
enum Instantiated {
    Exporter(crate::host::bindings::Exporter),
    Cache(crate::host::bindings::cache::CacheBackend),
}

async fn execute(
    engine: &wasmtime::Engine,
    role: &Role,
    (image, context): (Option<Arc<Image>>, Arc<RunContext>),
    spec: &InstanceSpec,
    (reporter, log): (Arc<dyn Reporter>, GuestLog),
    (staging, phase): (&mut Option<Staging>, &Phase),
) -> Result<Finished, String> {
    if let Some(dest) = &spec.dest {
        *staging = Some(
            Staging::create(Target::parse(dest))
                .map_err(|e| format!("cannot prepare dest {dest}: {e}"))?,
        );
    }

    let mut wasi = WasiCtxBuilder::new();
    // Deny by default: no environment, arguments or stdin (the builder's
    // defaults), no sockets at all, stdout/stderr as log lines.
    wasi.stdout(log.stdio(0))
        .stderr(log.stdio(1))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(true);
    if let Some(staging) = staging.as_ref() {
        wasi.preopened_dir(staging.path(), PREOPEN, FsPerms::ReadWrite)
            .map_err(|e| format!("cannot grant the staging directory: {e:#}"))?;
    }
    let mut source = None;
    if let Role::CacheImport(_, Some(src)) = role {
        if !src.is_dir() {
            return Err(format!("src {} is not a directory", src.display()));
        }
        wasi.preopened_dir(src, SOURCE_PREOPEN, FsPerms::ReadOnly)
            .map_err(|e| format!("cannot grant src {}: {e:#}", src.display()))?;
        source = Some(SOURCE_PREOPEN.to_string());
    }
    let http = if spec.network.is_empty() {
        HttpAccess::denied(&spec.id, reporter.clone())
    } else {
        let credentials =
            Credentials::load().map_err(|e| format!("cannot read registry credentials: {e}"))?;
        let access = HttpAccess::new(
            &spec.id,
            spec.network.clone(),
            credentials,
            &spec.limits,
            reporter.clone(),
        );
        match &spec.s3 {
            Some(signing) => access.with_s3_signing(signing.clone()),
            None => access,
        }
    };
    let state = InstanceState::new(
        wasi.build(),
        Grants {
            image,
            run: Some(context.clone()),
            log,
            http,
            reporter,
            instance_id: spec.id.clone(),
        },
        &spec.limits,
    );
    let mut store = new_store(engine, state, &spec.limits)?;

    let limits = &spec.limits;
    let instantiated = match role {
        Role::Export(component) => component
            .pre
            .instantiate_async(&mut store)
            .await
            .map(Instantiated::Exporter),
        Role::CacheExport(backend) | Role::CacheImport(backend, _) => backend
            .pre
            .instantiate_async(&mut store)
            .await
            .map(Instantiated::Cache),
    }
    .map_err(|e| trap_message("instantiation", &e, &store, limits))?;

    let operation = match role {
        Role::CacheImport(..) => CacheOperation::ImportCache,
        _ => CacheOperation::ExportCache,
    };
    phase.set("validate");
    let kind = match &instantiated {
        Instantiated::Exporter(e) => e.call_validate(&mut store, &spec.options).await,
        Instantiated::Cache(c) => c.call_validate(&mut store, &spec.options, operation).await,
    }
    .map_err(|e| trap_message("validate", &e, &store, limits))?
    .map_err(guest_error)?;

    let allowed = match (spec.limits.destination, kind) {
        (DestinationRule::Directory, OutputKind::File) => Some("directory"),
        (DestinationRule::File, OutputKind::Directory) => Some("file"),
        _ => None,
    };
    if let Some(allowed) = allowed {
        return Err(format!(
            "the policy lets this component write only a {allowed} destination"
        ));
    }
    let destination: Option<Destination> = match (staging.as_ref(), kind) {
        (None, OutputKind::None) => None,
        (None, _) => return Err("this exporter needs a destination: add dest=PATH".to_string()),
        (Some(staging), kind) => Some(staging.grant(kind)?),
    };
    if let (Role::CacheExport(_), Some(staging), OutputKind::Directory) =
        (role, staging.as_mut(), kind)
    {
        staging
            .seed()
            .map_err(|e| format!("cannot stage the existing cache at the destination: {e}"))?;
    }

    let request = crate::host::bindings::types::Request {
        options: spec.options.clone(),
        destination: destination.clone(),
        instance_id: spec.id.clone(),
        host_platform: crate::host::platform::host_platform(),
        source_date_epoch: context.source_date_epoch,
    };
    let http = store.data().http.clone();
    let damaged = store.data().image.damaged.clone();
    let phase_name = match (&instantiated, operation) {
        (Instantiated::Exporter(_), _) => "export",
        (Instantiated::Cache(_), CacheOperation::ExportCache) => "export-cache",
        (Instantiated::Cache(_), CacheOperation::ImportCache) => "import-cache",
    };
    phase.set(phase_name);
    let called = match (&instantiated, operation) {
        (Instantiated::Exporter(e), _) => e.call_export(&mut store, &request).await,
        (Instantiated::Cache(c), CacheOperation::ExportCache) => {
            c.call_export_cache(&mut store, &request).await
        }
        (Instantiated::Cache(c), CacheOperation::ImportCache) => {
            c.call_import_cache(&mut store, &request, source.as_deref())
                .await
        }
    };
    let entries = called
        .map_err(|e| trap_message(phase_name, &e, &store, limits))?
        .map_err(|e| match http.problem() {
            // What the host saw (a refused host, missing credentials)
            // explains the guest's error.
            Some(problem) => format!("{} (host: {problem})", guest_error(e)),
            None => guest_error(e),
        })?;
    drop(store);
    if let Some(damage) = damaged.get() {
        return Err(format!(
            "{damage} (the component went on after this error; its output is discarded)"
        ));
    }
    phase.set("placing the output");
    Ok(Finished {
        response: collect_response(entries)?,
        destination,
    })
}

/// A store for `state` enforcing `limits`: memory, tables and instances
/// through the store limiter, wall time through the epoch deadline. Every
/// [`YIELD_TICKS`] epochs a running guest yields to the async runtime, so a
/// guest busy computing neither monopolises a worker thread nor escapes
/// cancellation; past its time limit it traps with `Trap::Interrupt`.
/// With a fuel limit, the store gets that much fuel (the engine must meter
/// fuel); without one, unlimited fuel if the engine meters it.
fn new_store(
    engine: &wasmtime::Engine,
    state: InstanceState,
    limits: &Limits,
) -> Result<Store<InstanceState>, String> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(TRANSFER_LIMIT);
    match limits.fuel {
        Some(fuel) => store
            .set_fuel(fuel)
            .map_err(|_| "the policy sets fuel but the engine does not meter fuel".to_string())?,
        // Fails, harmlessly, on an engine that does not meter fuel.
        None => drop(store.set_fuel(u64::MAX)),
    }
    let deadline = store.data().deadline;
    store.set_epoch_deadline(YIELD_TICKS);
    store.epoch_deadline_callback(move |_| {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(YIELD_TICKS))
        }
    });
    Ok(store)
}

/// Checks the guest's response entries and turns them into a map.
fn collect_response(
    entries: Vec<crate::host::bindings::types::ResponseEntry>,
) -> Result<BTreeMap<String, String>, String> {
    if entries.len() > MAX_RESPONSE_ENTRIES {
        return Err(format!(
            "response limit of {MAX_RESPONSE_ENTRIES} entries exceeded ({} entries)",
            entries.len()
        ));
    }
    let total: usize = entries.iter().map(|e| e.key.len() + e.value.len()).sum();
    if total > MAX_RESPONSE_BYTES {
        return Err(format!(
            "response limit of {MAX_RESPONSE_BYTES} bytes exceeded ({total} bytes)"
        ));
    }
    let mut map = BTreeMap::new();
    for entry in entries {
        if entry.key.is_empty()
            || entry
                .key
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "response key {:?} is empty or has spaces or control characters",
                entry.key
            ));
        }
        if map.insert(entry.key.clone(), entry.value).is_some() {
            return Err(format!("response key {:?} is given twice", entry.key));
        }
    }
    Ok(map)
}

/// One line for an error the guest returned.
fn guest_error(e: GuestError) -> String {
    match e {
        GuestError::InvalidOption(m) => format!("invalid option: {m}"),
        GuestError::Unsupported(m) => format!("unsupported: {m}"),
        GuestError::Io(m) => format!("I/O error: {m}"),
        GuestError::Network(m) => format!("network error: {m}"),
        GuestError::Limit(m) => format!("limit exceeded: {m}"),
        GuestError::InvalidImage(m) => format!("invalid image: {m}"),
        GuestError::Other(m) => m,
    }
}

/// One line for a trap or host error during `phase`, naming the limit and
/// its value when one stopped the guest.
fn trap_message(
    phase: &str,
    e: &wasmtime::Error,
    store: &Store<InstanceState>,
    limits: &Limits,
) -> String {
    if let Some(limit) = store.data().limiter.hit() {
        return format!("{phase}: {limit}");
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            return format!(
                "{phase}: time limit of {} s exceeded",
                limits.timeout.as_secs()
            );
        }
        Some(wasmtime::Trap::OutOfFuel) => {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            return format!("{phase}: fuel limit of {fuel} exceeded");
        }
        Some(wasmtime::Trap::StackOverflow) => {
            return format!("{phase}: stack overflow (the guest exhausted its call stack)");
        }
        _ => {}
    }
    let cause_is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
    if cause_is(&|c| {
        matches!(
            c.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    }) {
        return match limits.descriptors {
            Some(share) => format!(
                "{phase}: descriptor budget of {} handles exceeded (open-file limit {} shared by {} instances)",
                share.handles, share.open_files, share.instances
            ),
            None => format!(
                "{phase}: resources limit of {} handles exceeded",
                limits.resources
            ),
        };
    }
    // The store counts core instances (and the memories and tables they
    // define, bounded by the same limit) as the component is instantiated.
    let root = e.root_cause().to_string();
    if let Some(count) = root.strip_prefix("resource limit exceeded: ") {
        return format!(
            "{phase}: instances limit of {} exceeded ({count}: the component creates more core instances than the policy allows)",
            limits.instances
        );
    }
    if cause_is(&|c| c.downcast_ref::<std::str::Utf8Error>().is_some()) {
        return format!("{phase}: the guest passed a string that is not valid UTF-8");
    }
    if cause_is(&|c| c.to_string().starts_with("too much data is being copied")) {
        return format!(
            "{phase}: transfer limit of {TRANSFER_LIMIT} bytes in one call exceeded (the arguments of a host call, or the response)"
        );
    }
    // The root cause is the trap or host error; the outer layers only add a
    // multi-line wasm backtrace.
    let cause = root.lines().next().unwrap_or("unknown error");
    format!("{phase}: guest trapped: {cause}")
}

/// A store with default limits and no image, destination or WASI
/// capabilities, for running a component outside an export.
fn bare_store(
    engine: &wasmtime::Engine,
    id: &str,
    limits: &Limits,
) -> Result<Store<InstanceState>, String> {
    let reporter: Arc<dyn crate::run::reporter::Reporter> = Arc::new(crate::run::reporter::Silent);
    let state = InstanceState::new(
        WasiCtxBuilder::new().build(),
        Grants {
            image: None,
            run: None,
            log: GuestLog::new(reporter.clone(), id, 0),
            http: HttpAccess::denied(id, reporter.clone()),
            reporter,
            instance_id: id.to_string(),
        },
        limits,
    );
    new_store(engine, state, limits)
}

/// Instantiates `component` in a fresh store with default limits and no
/// image or destination, then drops it: the fixed cost every instance pays
/// before its guest runs (measured by the benchmark).
pub async fn instantiate_bare(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
) -> Result<(), String> {
    let limits = Limits::default();
    let mut store = bare_store(engine, "instantiate", &limits)?;
    component
        .pre
        .instantiate_async(&mut store)
        .await
        .map(drop)
        .map_err(|e| trap_message("instantiation", &e, &store, &limits))
}

/// Asks a component to describe itself (name, version, options), in a
/// store with default limits and no image or destination.
pub async fn describe(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
) -> Result<crate::host::bindings::types::ComponentInfo, String> {
    describe_role(engine, &Role::Export(component.clone())).await
}

/// Asks a cache backend to describe itself, as [`describe`] does.
pub async fn describe_cache_backend(
    engine: &wasmtime::Engine,
    backend: &LoadedCacheBackend,
) -> Result<crate::host::bindings::types::ComponentInfo, String> {
    describe_role(engine, &Role::CacheExport(backend.clone())).await
}

async fn describe_role(
    engine: &wasmtime::Engine,
    role: &Role,
) -> Result<crate::host::bindings::types::ComponentInfo, String> {
    let limits = Limits::default();
    let mut store = bare_store(engine, "describe", &limits)?;
    let described = match role {
        Role::Export(component) => match component.pre.instantiate_async(&mut store).await {
            Ok(exporter) => exporter.call_describe(&mut store).await,
            Err(e) => return Err(trap_message("instantiation", &e, &store, &limits)),
        },
        Role::CacheExport(backend) | Role::CacheImport(backend, _) => {
            match backend.pre.instantiate_async(&mut store).await {
                Ok(cache) => cache.call_describe(&mut store).await,
                Err(e) => return Err(trap_message("instantiation", &e, &store, &limits)),
            }
        }
    };
    described.map_err(|e| trap_message("describe", &e, &store, &limits))
}
