//! `outport export`: read the input, run every output (and cache export),
//! print a summary, write the metadata file. The pieces shared with
//! `outport cache` (setting up the session, the summary, the metadata file)
//! live here too.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::host::bindings::types::CacheOperation;
use crate::input::{Input, InputError, Opened, PullOptions};
use crate::run::cache_plan::CacheSource;
use crate::run::session::SessionResult;
use crate::{ImageSource, InstanceResult, Limits, OutputSpec, Session, Status};

use super::error::{CliError, CliResult, EXIT_FAILED, EXIT_OK, exit_code};
use super::render::{self, CliReporter, Mode};
use super::{ExportArgs, Progress, RunArgs};

/// A session set up from the command line (`fail_fast`: cancel the others
/// when one instance fails), and its reporter.
pub fn session(
    options: &RunArgs,
    fail_fast: bool,
) -> Result<(Session, Arc<CliReporter>), CliError> {
    let mut policy = match options.policy.as_deref() {
        None => crate::sandbox::policy::Policy::default(),
        Some(path) => crate::sandbox::policy::Policy::load(path).map_err(CliError::usage)?,
    };
    if let Some(seconds) = options.timeout {
        policy.limits.timeout_seconds = Some(seconds);
    }
    let plugins = options.plugins.dirs().map_err(CliError::usage)?;
    let engine = options.engine.engine(policy.uses_fuel())?;
    let mode = match options.progress {
        Progress::Quiet => Mode::Quiet,
        Progress::Plain => Mode::Plain,
        Progress::Auto if std::io::stderr().is_terminal() => Mode::Bars,
        Progress::Auto => Mode::Plain,
    };
    let reporter = render::reporter(mode);
    let session = Session::new(Arc::new(engine), reporter.clone(), Limits::default())
        .policy(policy)
        .plugins(plugins)
        .fail_fast(fail_fast);
    Ok((session, reporter))
}

/// Parses `--output`-style specifications given with `flag`; a bad one is
/// a usage error.
pub fn parse_specs(specs: &[String], flag: &str) -> Result<Vec<OutputSpec>, CliError> {
    specs
        .iter()
        .map(|s| OutputSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| match e {
            crate::Error::OutputSpec { spec, message } => {
                CliError::usage(format!("{flag} {spec:?}: {message}"))
            }
            other => CliError::usage(other),
        })
}

/// Parses the INPUT argument; a bad one is a usage error.
pub fn parse_input(input: &str) -> Result<Input, CliError> {
    Input::parse(input).map_err(input_error)
}

/// Reads the input image off the async threads (`display`: the argument);
/// a `docker://` input is pulled as `run` says (`--src-insecure`, the blob
/// store in the cache directory).
pub async fn open_image(input: Input, display: &str, run: &RunArgs) -> Result<Opened, CliError> {
    let owned = display.to_owned();
    let cache = if run.engine.no_cache {
        None
    } else {
        run.engine
            .cache_dir
            .clone()
            .or_else(crate::engine::default_cache_dir)
    };
    let insecure = run.src_insecure;
    let opened = tokio::task::spawn_blocking(move || {
        // Without a cache directory, a store of this run alone.
        let store = cache.map(|dir| dir.join("blobs"));
        input
            .open(&owned, &PullOptions { insecure, store })
            .map_err(input_error)
    })
    .await;
    match opened {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(CliError::failed(format!("reading {display}: {e}"))),
    }
}

/// After the run: prunes the blob store the input was read from to
/// `--blob-store-max`, keeping the blobs the run used. A failure is a
/// warning: the export is done.
pub fn tidy_store(opened: &Opened, run: &RunArgs) {
    let Some((store, used)) = &opened.store else {
        return;
    };
    if let Err(e) = store.prune(run.blob_store_max, used) {
        eprintln!("warning: {e}");
    }
}

fn input_error(e: InputError) -> CliError {
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
    }
}

pub async fn run(args: ExportArgs) -> CliResult {
    let input = parse_input(&args.input)?;
    let outputs = parse_specs(&args.outputs, "--output")?;
    let caches = parse_specs(&args.export_cache, "--export-cache")?;
    crate::run::output_spec::assign_ids(&outputs).map_err(CliError::usage)?;
    let to_stdout = outputs.iter().any(|o| o.dest.as_deref() == Some("-"));
    if outputs
        .iter()
        .filter(|o| o.dest.as_deref() == Some("-"))
        .count()
        > 1
    {
        return Err(CliError::usage(
            "only one output can go to standard output (dest=-)",
        ));
    }
    let (epoch, source_date_epoch) = source_date_epoch(&args)?;
    let build_info =
        crate::buildinfo::BuildInputs::from_args(args.build_sources.as_deref(), &args.attrs)
            .and_then(|mut b| {
                b.provenance = crate::buildinfo::provenance::Request::from_args(
                    &args.attest,
                    epoch.as_deref(),
                )?;
                Ok(b)
            })
            .map_err(CliError::usage)?;
    let (session, reporter) = session(&args.run, args.fail_fast)?;
    let session = session
        .source_date_epoch(source_date_epoch)
        .build_info(build_info);
    // Unknown types and unloadable components are usage errors, found
    // before the input is even read.
    let plans = session.prepare(&outputs).and_then(|plan| {
        let cache = session.prepare_cache(&caches, CacheOperation::ExportCache)?;
        Ok((plan, cache))
    });
    let (plan, cache_plan) = plans.map_err(CliError::usage)?;
    // Exporters pushing to the registry of a docker:// input mount its
    // layers from there.
    let session = session.image_source(match &input {
        Input::Registry(reference) => ImageSource::of_reference(reference),
        _ => None,
    });
    let opened = open_image(input, &args.input, &args.run).await?;
    let image = Arc::new(opened.image.clone());
    let source = CacheSource::Image(image.clone());
    let result = session
        .run_with_cache(Some(image), plan, cache_plan, Some(source))
        .await
        .map_err(CliError::failed)?;
    reporter.finish();
    tidy_store(&opened, &args.run);

    // With an output on stdout, the summary goes to stderr.
    let mut summary: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let mut code = summarize(&result, &mut summary);
    if let Some(path) = &args.iidfile
        && let Some(failed) =
            write_iidfile(&result, path, args.iidfile_from.as_deref(), &mut summary)
    {
        code = failed;
    }
    let metadata = write_metadata(
        &result,
        args.metadata_file.as_ref(),
        Some(&opened.source),
        &mut summary,
    );
    Ok(metadata.unwrap_or(code))
}

/// The source date epoch (`--source-date-epoch`, else `SOURCE_DATE_EPOCH`;
/// blank is none): as given, and in seconds.
fn source_date_epoch(args: &ExportArgs) -> Result<(Option<String>, Option<u64>), CliError> {
    let epoch = args
        .source_date_epoch
        .clone()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|s| !s.trim().is_empty());
    let seconds = match epoch.as_deref().map(|s| s.trim().parse::<u64>()) {
        None => None,
        Some(Ok(seconds)) => Some(seconds),
        Some(Err(_)) => {
            return Err(CliError::usage(format!(
                "source date epoch {:?} (--source-date-epoch or SOURCE_DATE_EPOCH): expected a number of seconds since 1970",
                epoch.unwrap_or_default()
            )));
        }
    };
    Ok((epoch, seconds))
}

/// Writes the image ID of `result` (`--iidfile-from` picks the instance)
/// to `path` and says so in `summary`; the exit code of a failure.
fn write_iidfile(
    result: &SessionResult,
    path: &std::path::Path,
    from: Option<&str>,
    summary: &mut dyn Write,
) -> Option<u8> {
    let written = crate::output::iidfile::image_id(result, from).and_then(|id| {
        crate::output::atomic::write_file(path, id.as_bytes()).map_err(|e| crate::Error::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    });
    match written {
        Ok(()) => {
            let _ = writeln!(summary, "image ID -> {}", path.display());
            None
        }
        Err(e) => Some(exit_code(Err(CliError::failed(e)))),
    }
}

/// Prints one line per instance (exporters, then cache instances) and the
/// failures' errors; returns the exit code the results call for.
pub fn summarize(result: &SessionResult, summary: &mut dyn Write) -> u8 {
    let line = |summary: &mut dyn Write, r: &InstanceResult, key: &str, note: &str| {
        let dest = match (r.dest.as_deref(), r.load) {
            (Some(dest), true) => format!("{dest} and the docker daemon"),
            (Some(dest), false) => dest.to_owned(),
            (None, true) => "the docker daemon".to_owned(),
            (None, false) => "(no local output)".to_owned(),
        };
        let _ = match &r.status {
            Status::Ok => writeln!(
                summary,
                "{:<8} [{}] {} -> {} {} ({:.2}s)",
                "ok",
                r.id,
                r.kind,
                dest,
                // The value is the guest's: one line, escaped.
                crate::sandbox::text::one_line(
                    r.response.get(key).map(String::as_str).unwrap_or("")
                ),
                r.elapsed.as_secs_f64()
            ),
            Status::Failed(_) => writeln!(
                summary,
                "{:<8} [{}] {} -> {} (nothing written{note})",
                "failed", r.id, r.kind, dest
            ),
        };
    };
    for r in &result.exporters {
        line(summary, r, "containerimage.digest", "");
    }
    for c in &result.cache {
        let note = if c.ignore_error {
            "; ignore-error=true"
        } else {
            ""
        };
        line(summary, &c.instance, "cache.digest", note);
    }
    let cache = result.cache.iter().map(|c| (&c.instance, c.ignore_error));
    for (r, ignored) in result.exporters.iter().map(|r| (r, false)).chain(cache) {
        if let Status::Failed(message) = &r.status {
            let what = if ignored { "warning" } else { "error" };
            eprintln!("{what}: instance {:?} ({}): {message}", r.id, r.kind);
        }
    }
    if result.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// Writes the metadata file when asked; `Some(EXIT_FAILED)` when that fails.
pub fn write_metadata(
    result: &SessionResult,
    path: Option<&PathBuf>,
    source: Option<&crate::output::metadata::Source>,
    summary: &mut dyn Write,
) -> Option<u8> {
    let path = path?;
    if let Err(e) = crate::output::metadata::write(path, result, source) {
        return Some(exit_code(Err(CliError::failed(format!(
            "metadata file: {e}"
        )))));
    }
    let _ = writeln!(summary, "metadata -> {}", path.display());
    None
}
