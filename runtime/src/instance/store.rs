//! An instance's store: its limits (memory, tables and instances through
//! the limiter, wall time through the epoch deadline, fuel), and stores
//! for running a component outside an export (`describe`, and the bare
//! instantiation the benchmark times).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::Role;
use super::failure::{Failure, TRANSFER_LIMIT, trap};
use super::state::{Grants, InstanceState};
use crate::engine::{LoadedCacheBackend, LoadedComponent};
use crate::host::http::HttpAccess;
use crate::host::stdio::GuestLog;
use crate::sandbox::limits::Limits;

/// Epoch ticks (see [`crate::engine::EPOCH_TICK`]) between two yields of a
/// running guest.
const YIELD_TICKS: u64 = 10;

/// A store for `state` enforcing `limits`: memory, tables and instances
/// through the store limiter, wall time through the epoch deadline. Every
/// [`YIELD_TICKS`] epochs a running guest yields to the async runtime, so a
/// guest busy computing neither monopolises a worker thread nor escapes
/// cancellation; past its time limit it traps with `Trap::Interrupt`.
/// With a fuel limit, the store gets that much fuel (the engine must meter
/// fuel); without one, unlimited fuel if the engine meters it.
pub(super) fn new_store(
    engine: &wasmtime::Engine,
    state: InstanceState,
    limits: &Limits,
) -> Result<Store<InstanceState>, Failure> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(TRANSFER_LIMIT);
    match limits.fuel {
        Some(fuel) => store.set_fuel(fuel).map_err(|_| {
            Failure::host("the policy sets fuel but the engine does not meter fuel")
        })?,
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

/// A store with default limits and no image, destination or WASI
/// capabilities, for running a component outside an export.
fn bare_store(
    engine: &wasmtime::Engine,
    id: &str,
    limits: &Limits,
) -> Result<Store<InstanceState>, Failure> {
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
) -> Result<(), Failure> {
    let limits = Limits::default();
    let mut store = bare_store(engine, "instantiate", &limits)?;
    component
        .pre
        .instantiate_async(&mut store)
        .await
        .map(drop)
        .map_err(|e| trap("instantiation", &e, &store, &limits))
}

/// Asks a component to describe itself (name, version, options), in a
/// store with default limits and no image or destination.
pub async fn describe(
    engine: &wasmtime::Engine,
    component: &LoadedComponent,
) -> Result<crate::host::bindings::types::ComponentInfo, Failure> {
    describe_role(engine, &Role::Export(component.clone())).await
}

/// Asks a cache backend to describe itself, as [`describe`] does.
pub async fn describe_cache_backend(
    engine: &wasmtime::Engine,
    backend: &LoadedCacheBackend,
) -> Result<crate::host::bindings::types::ComponentInfo, Failure> {
    describe_role(engine, &Role::CacheExport(backend.clone())).await
}

async fn describe_role(
    engine: &wasmtime::Engine,
    role: &Role,
) -> Result<crate::host::bindings::types::ComponentInfo, Failure> {
    let limits = Limits::default();
    let mut store = bare_store(engine, "describe", &limits)?;
    let described = match role {
        Role::Export(component) => match component.pre.instantiate_async(&mut store).await {
            Ok(exporter) => exporter.call_describe(&mut store).await,
            Err(e) => return Err(trap("instantiation", &e, &store, &limits)),
        },
        Role::CacheExport(backend) | Role::CacheImport(backend, _) => {
            match backend.pre.instantiate_async(&mut store).await {
                Ok(cache) => cache.call_describe(&mut store).await,
                Err(e) => return Err(trap("instantiation", &e, &store, &limits)),
            }
        }
    };
    described.map_err(|e| trap("describe", &e, &store, &limits))
}
