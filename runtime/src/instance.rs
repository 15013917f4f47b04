//! Running one instance: a fresh store with its own limits, `validate`,
//! the granted destination, `export`, and atomic placement of the output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outport_image::Image;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::types::{Destination, Error as GuestError, OutputKind};
use crate::destination::{PREOPEN, Staging, Target};
use crate::engine::LoadedComponent;
use crate::limits::{DestinationRule, Limits, check_output_size};
use crate::report::{LogLevel, Reporter};
use crate::state::InstanceState;

/// Epoch ticks (see [`crate::engine::EPOCH_TICK`]) between two yields of a
/// running guest.
const YIELD_TICKS: u64 = 10;

/// Bytes of a guest's stdout/stderr kept (shown as log lines).
const STDIO_CAPTURE: usize = 64 << 10;

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

/// Runs one instance of `component` on `image`. Never panics on guest
/// behaviour: every failure becomes [`Status::Failed`].
pub async fn run(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
    image: Arc<Image>,
    spec: InstanceSpec,
    reporter: Arc<dyn Reporter>,
) -> InstanceResult {
    let started = Instant::now();
    let stdio = MemoryOutputPipe::new(STDIO_CAPTURE);
    let outcome = execute(
        engine,
        component,
        image,
        &spec,
        reporter.clone(),
        stdio.clone(),
    )
    .await;
    let guest_output = String::from_utf8_lossy(&stdio.contents()).into_owned();
    for line in guest_output.lines().filter(|l| !l.trim().is_empty()) {
        reporter.log(&spec.id, LogLevel::Info, line);
    }
    let (status, response) = match outcome {
        Ok(response) => (Status::Ok, response),
        Err(mut message) => {
            // The guest's last words (a Rust guest's panic message), without
            // the hint about RUST_BACKTRACE that follows it.
            let last = guest_output.lines().rev().find(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE")
            });
            if let Some(last) = last {
                message.push_str(&format!(" (guest output: {})", last.trim()));
            }
            (Status::Failed(message), BTreeMap::new())
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

async fn execute(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
    image: Arc<Image>,
    spec: &InstanceSpec,
    reporter: Arc<dyn Reporter>,
    stdio: MemoryOutputPipe,
) -> Result<BTreeMap<String, String>, String> {
    let staging = match &spec.dest {
        Some(dest) => Some(
            Staging::create(Target::parse(dest))
                .map_err(|e| format!("cannot prepare dest {dest}: {e}"))?,
        ),
        None => None,
    };

    let mut wasi = WasiCtxBuilder::new();
    // Deny by default: no environment, arguments or stdin (the builder's
    // defaults), no sockets at all, stdout/stderr captured as log lines.
    wasi.stdout(stdio.clone())
        .stderr(stdio)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(true);
    if let Some(staging) = &staging {
        wasi.preopened_dir(staging.path(), PREOPEN, FsPerms::ReadWrite)
            .map_err(|e| format!("cannot grant the staging directory: {e:#}"))?;
    }
    let state = InstanceState::new(
        wasi.build(),
        Some(image),
        reporter,
        spec.id.clone(),
        &spec.limits,
    );
    let mut store = new_store(engine, state, &spec.limits);

    let limits = &spec.limits;
    let exporter = component
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| trap_message("instantiation", &e, &store, limits))?;

    let kind = exporter
        .call_validate(&mut store, &spec.options)
        .await
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
    let destination: Option<Destination> = match (&staging, kind) {
        (None, OutputKind::None) => None,
        (None, _) => return Err("this exporter needs a destination: add dest=PATH".to_string()),
        (Some(staging), kind) => Some(staging.grant(kind)?),
    };

    let request = crate::bindings::types::Request {
        options: spec.options.clone(),
        destination: destination.clone(),
        instance_id: spec.id.clone(),
    };
    let entries = exporter
        .call_export(&mut store, &request)
        .await
        .map_err(|e| trap_message("export", &e, &store, limits))?
        .map_err(guest_error)?;
    drop(store);

    let response = collect_response(entries)?;
    if let (Some(staging), Some(destination)) = (staging, destination) {
        let dest = spec.dest.as_deref().unwrap_or_default();
        check_output_size(staging.path(), spec.limits.output_bytes)?;
        staging
            .commit(&destination)
            .map_err(|e| format!("cannot move the output into place at {dest}: {e}"))?;
    }
    Ok(response)
}

/// A store for `state` enforcing `limits`: memory, tables and instances
/// through the store limiter, wall time through the epoch deadline. Every
/// [`YIELD_TICKS`] epochs a running guest yields to the async runtime, so a
/// guest busy computing neither monopolises a worker thread nor escapes
/// cancellation; past its time limit it traps with `Trap::Interrupt`.
fn new_store(
    engine: &wasmtime::Engine,
    state: InstanceState,
    limits: &Limits,
) -> Store<InstanceState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let deadline = Instant::now() + limits.timeout;
    store.set_epoch_deadline(YIELD_TICKS);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(YIELD_TICKS))
        }
    });
    store
}

/// Checks the guest's response entries and turns them into a map.
fn collect_response(
    entries: Vec<crate::bindings::types::ResponseEntry>,
) -> Result<BTreeMap<String, String>, String> {
    const MAX_ENTRIES: usize = 1024;
    const MAX_BYTES: usize = 1 << 20;
    if entries.len() > MAX_ENTRIES {
        return Err(format!(
            "response has {} entries, more than {MAX_ENTRIES}",
            entries.len()
        ));
    }
    let total: usize = entries.iter().map(|e| e.key.len() + e.value.len()).sum();
    if total > MAX_BYTES {
        return Err(format!("response is {total} bytes, more than {MAX_BYTES}"));
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
    .replace('\n', " ")
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
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return format!(
            "{phase}: time limit of {} s exceeded",
            limits.timeout.as_secs()
        );
    }
    // The root cause is the trap or host error; the outer layers only add a
    // multi-line wasm backtrace.
    let cause = e.root_cause().to_string();
    let cause = cause.lines().next().unwrap_or("unknown error");
    format!("{phase}: guest trapped: {cause}")
}

/// A store with default limits and no image, destination or WASI
/// capabilities, for running a component outside an export.
fn bare_store(engine: &wasmtime::Engine, id: &str, limits: &Limits) -> Store<InstanceState> {
    let state = InstanceState::new(
        WasiCtxBuilder::new().build(),
        None,
        Arc::new(crate::report::Silent),
        id.to_string(),
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
    let mut store = bare_store(engine, "instantiate", &limits);
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
) -> Result<crate::bindings::types::ComponentInfo, String> {
    let limits = Limits::default();
    let mut store = bare_store(engine, "describe", &limits);
    let exporter = component
        .pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| trap_message("instantiation", &e, &store, &limits))?;
    exporter
        .call_describe(&mut store)
        .await
        .map_err(|e| trap_message("describe", &e, &store, &limits))
}
