//! The guest part of an instance: its staging directory, its WASI
//! context and outbound HTTP, its store, `validate`, the destination
//! granted, and the `export` call (or a cache backend's).

use std::collections::BTreeMap;
use std::sync::Arc;

use outport_image::Image;
use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::failure::{Failure, FailureKind, guest_error, trap, view_failure};
use super::load::Streaming;
use super::response::collect_response;
use super::state::{Grants, InstanceState};
use super::store::new_store;
use super::{InstanceSpec, Role, SOURCE_PREOPEN};
use crate::host::HostView;
use crate::host::bindings::types::{CacheOperation, Destination, OutputKind};
use crate::host::http::HttpAccess;
use crate::host::stdio::GuestLog;
use crate::outbound::docker_config::Credentials;
use crate::outbound::docker_daemon::Daemon;
use crate::output::destination::{PREOPEN, Staging, Target};
use crate::run::context::RunContext;
use crate::run::reporter::Reporter;
use crate::sandbox::limits::{DestinationRule, Limits};

/// Which step of an instance is running, for a time limit's message.
#[derive(Default)]
pub(super) struct Phase(std::sync::Mutex<&'static str>);

impl Phase {
    fn set(&self, phase: &'static str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    pub(super) fn get(&self) -> &'static str {
        let phase = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        if phase.is_empty() {
            "instantiation"
        } else {
            phase
        }
    }
}

/// What the guest part of an instance ended with.
pub(super) struct Finished {
    pub(super) response: BTreeMap<String, String>,
    pub(super) destination: Option<Destination>,
    /// The docker daemon the output is loaded into (`load`).
    pub(super) daemon: Option<Daemon>,
    /// The load under way while the component wrote (a file output).
    pub(super) streaming: Option<Streaming>,
}

/// An instantiated component, by world.
enum Instantiated {
    Exporter(crate::host::bindings::Exporter),
    Cache(crate::host::bindings::cache::CacheBackend),
}

/// The guest part of an instance: its staging directory, its store, its
/// `validate`, its destination granted, its `export`.
pub(super) async fn execute(
    engine: &wasmtime::Engine,
    role: &Role,
    (image, context): (Option<Arc<Image>>, Arc<RunContext>),
    spec: &InstanceSpec,
    (reporter, log): (Arc<dyn Reporter>, GuestLog),
    (staging, phase): (&mut Option<Staging>, &Phase),
) -> Result<Finished, Failure> {
    // The daemon is found and asked before the component runs: a refused
    // DOCKER_HOST or a daemon not answering fails the instance at once.
    let daemon = match spec.load {
        true => {
            let daemon = Daemon::from_env().map_err(|e| Failure::host(e.to_string()))?;
            daemon
                .ping()
                .await
                .map_err(|e| Failure::host(e.to_string()))?;
            Some(daemon)
        }
        false => None,
    };
    let target = match (&spec.dest, spec.load) {
        (Some(dest), _) => Some(Target::parse(dest)),
        (None, true) => Some(Target::Daemon),
        (None, false) => None,
    };
    if let Some(target) = target {
        let what = spec
            .dest
            .as_deref()
            .unwrap_or("the docker daemon's staging file");
        *staging = Some(
            Staging::create(target)
                .map_err(|e| Failure::host(format!("cannot prepare dest {what}: {e}")))?,
        );
    }
    let (wasi, source) = wasi_context(role, log.clone(), staging.as_ref())?;
    let http = http_access(spec, &reporter)?;
    let grants = Grants {
        image,
        run: Some(context.clone()),
        log,
        http,
        reporter: reporter.clone(),
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
    // The load starts now and follows the file as the component writes it.
    let streaming = match (&daemon, staging.as_ref(), destination.as_ref()) {
        (Some(daemon), Some(staging), Some(destination)) => Streaming::start(
            daemon,
            (staging, destination),
            spec.limits.output_bytes,
            (reporter, &spec.id),
        ),
        _ => None,
    };
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
        daemon,
        streaming,
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
/// credentials (and the request signing of the `s3` and `azblob` cache
/// backends).
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
    Ok(match &spec.signing {
        Some(signing) => access.with_signing(signing.clone()),
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
    check_rule(
        spec.limits.destination,
        kind,
        (spec.load, spec.dest.is_some()),
    )?;
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

/// Checks the output kind, loading into the docker daemon (`load`) and a
/// `dest=` (`to_path`) against the policy's `destination` rule.
fn check_rule(
    rule: DestinationRule,
    kind: OutputKind,
    (load, to_path): (bool, bool),
) -> Result<(), Failure> {
    let refused = match (rule, kind) {
        (DestinationRule::Directory | DestinationRule::File, _) if load => {
            "the policy does not let this component load into the docker daemon"
        }
        (DestinationRule::Daemon, _) if !load || to_path => {
            "the policy lets this component write only into the docker daemon (load, no dest=)"
        }
        (DestinationRule::Directory, OutputKind::File) => {
            "the policy lets this component write only a directory destination"
        }
        (DestinationRule::File, OutputKind::Directory) => {
            "the policy lets this component write only a file destination"
        }
        _ => return Ok(()),
    };
    Err(Failure::new(FailureKind::Policy, refused))
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
    if let Some(damage) = damaged.get() {
        return Err(Failure::new(
            FailureKind::DamagedInput,
            format!("{damage} (the component went on after this error; its output is discarded)"),
        ));
    }
    // Every uncompressed view the guest was handed is checked, read or not:
    // a layer that does not match its diff ID fails the instance.
    let settled = store.data_mut().image().settle_views().await;
    if let Err(e) = settled {
        let hit = store.data().image.limit_hit.clone();
        return Err(match e.into_guest() {
            Ok(error) => view_failure(phase_name, error, hit),
            Err(e) => trap(phase_name, &e, &store, &spec.limits),
        });
    }
    Ok(entries)
}
