//! `outport cache`: export a build cache (from a BuildKit cache directory
//! or an image), import one into a local OCI layout, list the backends.

use std::sync::Arc;

use crate::cache::{Cache, Selector};
use crate::host::bindings::types::CacheOperation;
use crate::run::cache_plan::CacheSource;

use super::error::{CliError, CliResult};
use super::export::{
    open_image, parse_input, parse_specs, session, summarize, tidy_store, write_metadata,
};
use super::render::CliReporter;
use super::{CacheExportArgs, CacheImportArgs, CacheRunArgs, RunArgs};
use crate::Session;
use crate::input::Opened;
use crate::run::cache_plan::CachePlan;
use crate::run::session::Plan;

/// `outport cache export INPUT --export-cache SPEC...`.
pub async fn export(args: CacheExportArgs) -> CliResult {
    let specs = parse_specs(&args.export_cache, "--export-cache")?;
    let (session, reporter, plan) = prepare(&args.run, &specs, CacheOperation::ExportCache)?;
    let input = args.input.clone();
    let read = tokio::task::spawn_blocking(move || {
        Cache::read_dir(std::path::Path::new(&input), &Selector::default())
    })
    .await;
    let (source, opened) = match read {
        Ok(Ok(Some(cache))) => (CacheSource::Cache(cache), None),
        Ok(Ok(None)) => {
            let input = parse_input(&args.input)?;
            let opened = open_image(input, &args.input, &args.run.run).await?;
            (
                CacheSource::Image(Arc::new(opened.image.clone())),
                Some(opened),
            )
        }
        Ok(Err(e)) => {
            return Err(CliError::failed(e));
        }
        Err(e) => {
            return Err(CliError::failed(format!("reading {}: {e}", args.input)));
        }
    };
    let result = session
        .run_with_cache(None, Plan::default(), plan, Some(source))
        .await;
    // A docker:// input's blob store is pruned as `outport export` does.
    let tidy = opened.as_ref().map(|opened| (opened, &args.run.run));
    finish(result, &reporter, args.run.metadata_file.as_ref(), tidy)
}

/// `outport cache import --import-cache SPEC --dest DIR`.
pub async fn import(args: CacheImportArgs) -> CliResult {
    let mut specs = parse_specs(std::slice::from_ref(&args.import_cache), "--import-cache")?;
    if specs[0].dest.is_some() {
        return Err(CliError::usage(
            "--import-cache takes no dest=; the layout goes to --dest",
        ));
    }
    specs[0].dest = Some(args.dest.display().to_string());
    let (session, reporter, plan) = prepare(&args.run, &specs, CacheOperation::ImportCache)?;
    finish(
        session
            .run_with_cache(None, Plan::default(), plan, None)
            .await,
        &reporter,
        args.run.metadata_file.as_ref(),
        None,
    )
}

/// The session and the checked cache instances of `specs`.
fn prepare(
    args: &CacheRunArgs,
    specs: &[crate::OutputSpec],
    operation: CacheOperation,
) -> Result<(Session, Arc<CliReporter>, CachePlan), CliError> {
    let (session, reporter) = session(&args.run, false)?;
    let plan = session
        .prepare_cache(specs, operation)
        .map_err(CliError::usage)?;
    Ok((session, reporter, plan))
}

/// After the run: the summary, the metadata file, and the blob store of
/// the input in `tidy` (with its run's options) pruned.
fn finish(
    result: Result<crate::SessionResult, crate::Error>,
    reporter: &Arc<CliReporter>,
    metadata: Option<&std::path::PathBuf>,
    tidy: Option<(&Opened, &RunArgs)>,
) -> CliResult {
    let result = result.map_err(CliError::failed)?;
    reporter.finish();
    if let Some((opened, run)) = tidy {
        tidy_store(opened, run);
    }
    let mut out = std::io::stdout();
    let code = summarize(&result, &mut out);
    Ok(write_metadata(&result, metadata, None, &mut out).unwrap_or(code))
}
