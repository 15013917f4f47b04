//! Loading an instance's file output into the docker daemon (`load`):
//! the host's `POST /images/load` starts with the component and is fed
//! the file as the component writes it ([`streaming`]); when the instance
//! has succeeded, its output is checked as any output is, the rest sent
//! within the instance's deadline (or, when the component rewrote bytes
//! already sent, the whole file again), the image the daemon loaded
//! checked against the one exported, its names reported; then placed at
//! `dest=` too when given, else removed.

mod streaming;

use std::collections::BTreeMap;
use std::time::Instant;

use super::InstanceSpec;
use super::failure::{Failure, FailureKind, placing_failed};
use crate::host::bindings::types::Destination;
use crate::outbound::docker_daemon::load::Loaded;
use crate::outbound::docker_daemon::{Daemon, DaemonError};
use crate::output::destination::{Checks, Staging};
use crate::output::tree::Links;
pub(super) use streaming::Streaming;

/// Response keys naming the exported image, one of which the daemon's
/// image ID must be (the config digest for docker's own image store, the
/// manifest digest for the containerd image store).
const IMAGE_KEYS: &[&str] = &["containerimage.config.digest", "containerimage.digest"];

/// Loads the staged output into `daemon` (ending the load `streaming`
/// when it was started), then places it at `dest=` (if given); returns
/// `response` with the daemon's names in `image.name`.
pub(super) async fn load_then_place(
    (daemon, streaming): (&Daemon, Option<Streaming>),
    mut response: BTreeMap<String, String>,
    (staging, destination): (Staging, Destination),
    spec: &InstanceSpec,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, Failure> {
    let checks = Checks {
        links: Links::Keep,
        max_bytes: spec.limits.output_bytes,
        deadline,
    };
    let limits = spec.limits.clone();
    let checked = tokio::task::spawn_blocking(move || {
        staging.check(&destination, &checks)?;
        let (file, len) = staging.open_output(&destination)?;
        Ok((staging, destination, file, len))
    })
    .await
    .map_err(|e| Failure::host(format!("checking the output failed: {e}")))?;
    let (staging, destination, file, len) = checked.map_err(|e| {
        placing_failed(e, &limits).map_message(|m| format!("cannot load the output: {m}"))
    })?;
    let load = async {
        match streaming {
            Some(streaming) => streaming.finish(file, len, deadline).await,
            None => daemon.load(file, len).await.map_err(load_failed),
        }
    };
    let loaded = tokio::time::timeout_at(deadline.into(), load)
        .await
        .map_err(|_| Failure::time("loading into the docker daemon", &spec.limits))??;
    check_image(&response, &loaded, daemon)?;
    if !loaded.names.is_empty() {
        response.insert("image.name".to_owned(), loaded.names.join(","));
    }
    let dest = spec.dest.clone().unwrap_or_default();
    let limits = spec.limits.clone();
    tokio::task::spawn_blocking(move || staging.place(&destination, deadline))
        .await
        .map_err(|e| Failure::host(format!("placing the output failed: {e}")))?
        .map_err(|e| {
            placing_failed(e, &limits)
                .map_message(|m| format!("cannot move the output into place at {dest}: {m}"))
        })?;
    Ok(response)
}

/// The failure for a load the daemon refused or could not take.
fn load_failed(e: DaemonError) -> Failure {
    let kind = match &e {
        DaemonError::LoadRefused { .. } | DaemonError::Refused { .. } => FailureKind::Output,
        _ => FailureKind::Host,
    };
    Failure::new(kind, e.to_string())
}

/// Checks that the image the daemon loaded is the one the component said
/// it exported.
fn check_image(
    response: &BTreeMap<String, String>,
    loaded: &Loaded,
    daemon: &Daemon,
) -> Result<(), Failure> {
    let claimed: Vec<&String> = IMAGE_KEYS.iter().filter_map(|k| response.get(*k)).collect();
    if claimed.is_empty() || claimed.iter().any(|c| c.as_str() == loaded.id.as_str()) {
        return Ok(());
    }
    Err(Failure::new(
        FailureKind::Output,
        format!(
            "docker daemon at {}: it loaded image {}, not the exported image {}",
            daemon.host(),
            loaded.id,
            crate::sandbox::text::one_line(claimed[0])
        ),
    ))
}
