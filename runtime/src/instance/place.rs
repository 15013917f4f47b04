//! After the guest part: a finished instance's output checked and moved
//! into place, or a failed one's staging directory removed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::failure::{Failure, FailureKind, placing_failed};
use super::guest::Finished;
use super::load;
use super::{InstanceSpec, Role};
use crate::output::destination::{Checks, Staging};
use crate::output::tree::Links;
use crate::run::reporter::{LogLevel, Reporter};

/// Checks the instance's staged output and moves it into place (a cache
/// import's layout verified first), off the async executor and no later
/// than `deadline`.
pub(super) async fn place(
    role: &Role,
    finished: Finished,
    staging: Option<Staging>,
    spec: &InstanceSpec,
    deadline: Instant,
) -> Result<BTreeMap<String, String>, Failure> {
    let (Some(staging), Some(destination)) = (staging, finished.destination) else {
        return Ok(finished.response);
    };
    if let Some(daemon) = &finished.daemon {
        let response = finished.response.clone();
        let daemon = (daemon, finished.streaming);
        return load::load_then_place(daemon, response, (staging, destination), spec, deadline)
            .await;
    }
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

/// Removes a failed instance's staging directory, saying so when its
/// filesystem is full (then the failure's kind is [`FailureKind::NoSpace`]).
pub(super) fn clean_up(
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
