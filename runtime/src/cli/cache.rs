//! `outport cache`: export a build cache (from a BuildKit cache directory
//! or an image), import one into a local OCI layout, list the backends.

use std::sync::Arc;

use outport::bindings::types::CacheOperation;
use outport::cache::{Cache, Selector};
use outport::run::session::CacheSource;

use super::export::{open_image, parse_specs, session, summarize, write_metadata};
use super::render::CliReporter;
use super::{CacheExportArgs, CacheImportArgs, CacheRunArgs, EXIT_FAILED, EXIT_USAGE};
use outport::Session;
use outport::run::session::{CachePlan, Plan};

/// `outport cache export INPUT --export-cache SPEC...`.
pub async fn export(args: CacheExportArgs) -> u8 {
    let specs = match parse_specs(&args.export_cache, "--export-cache") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (session, reporter, plan) = match prepare(&args.run, &specs, CacheOperation::ExportCache) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let input = args.input.clone();
    let read = tokio::task::spawn_blocking(move || {
        Cache::read_dir(std::path::Path::new(&input), &Selector::default())
    })
    .await;
    let source = match read {
        Ok(Ok(Some(cache))) => CacheSource::Cache(cache),
        Ok(Ok(None)) => match open_image(&args.input).await {
            Ok(image) => CacheSource::Image(image),
            Err(code) => return code,
        },
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.input);
            return EXIT_FAILED;
        }
    };
    finish(
        session
            .run_with_cache(None, Plan::default(), plan, Some(source))
            .await,
        &reporter,
        args.run.metadata_file.as_ref(),
    )
}

/// `outport cache import --import-cache SPEC --dest DIR`.
pub async fn import(args: CacheImportArgs) -> u8 {
    let mut specs = match parse_specs(std::slice::from_ref(&args.import_cache), "--import-cache") {
        Ok(s) => s,
        Err(code) => return code,
    };
    if specs[0].dest.is_some() {
        eprintln!("error: --import-cache takes no dest=; the layout goes to --dest");
        return EXIT_USAGE;
    }
    specs[0].dest = Some(args.dest.display().to_string());
    let (session, reporter, plan) = match prepare(&args.run, &specs, CacheOperation::ImportCache) {
        Ok(p) => p,
        Err(code) => return code,
    };
    finish(
        session
            .run_with_cache(None, Plan::default(), plan, None)
            .await,
        &reporter,
        args.run.metadata_file.as_ref(),
    )
}

/// The session and the checked cache instances of `specs`.
fn prepare(
    args: &CacheRunArgs,
    specs: &[outport::OutputSpec],
    operation: CacheOperation,
) -> Result<(Session, Arc<CliReporter>, CachePlan), u8> {
    let (session, reporter) = session(&args.run, false)?;
    match session.prepare_cache(specs, operation) {
        Ok(plan) => Ok((session, reporter, plan)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(EXIT_USAGE)
        }
    }
}

fn finish(
    result: Result<outport::SessionResult, outport::Error>,
    reporter: &Arc<CliReporter>,
    metadata: Option<&std::path::PathBuf>,
) -> u8 {
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    reporter.finish();
    let mut out = std::io::stdout();
    let code = summarize(&result, &mut out);
    write_metadata(&result, metadata, &mut out).unwrap_or(code)
}
