//! `outport export`: read the input, run every output, print a summary,
//! write the metadata file.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use outport::{Limits, OutputSpec, Session, Status};

use super::render::{self, Mode};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, ExportArgs, Progress};

pub async fn run(args: ExportArgs) -> u8 {
    let mut outputs = Vec::with_capacity(args.outputs.len());
    for spec in &args.outputs {
        match OutputSpec::parse(spec) {
            Ok(o) => outputs.push(o),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    }
    if let Err(e) = outport::options::assign_ids(&outputs) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let to_stdout = outputs.iter().any(|o| o.dest.as_deref() == Some("-"));
    if outputs
        .iter()
        .filter(|o| o.dest.as_deref() == Some("-"))
        .count()
        > 1
    {
        eprintln!("error: only one output can go to standard output (dest=-)");
        return EXIT_USAGE;
    }
    let build_info = match outport::buildinfo::BuildInputs::from_args(
        args.build_sources.as_deref(),
        &args.attrs,
    )
    .and_then(|mut b| {
        let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
        b.provenance =
            outport::buildinfo::provenance::Request::from_args(&args.attest, epoch.as_deref())?;
        Ok(b)
    }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };

    let mut policy = match args.policy.as_deref().map(outport::policy::Policy::load) {
        None => outport::policy::Policy::default(),
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(seconds) = args.timeout {
        policy.limits.timeout_seconds = Some(seconds);
    }

    let engine = match args.engine.engine(policy.uses_fuel()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_FAILED;
        }
    };
    let mode = match args.progress {
        Progress::Quiet => Mode::Quiet,
        Progress::Plain => Mode::Plain,
        Progress::Auto if std::io::stderr().is_terminal() => Mode::Bars,
        Progress::Auto => Mode::Plain,
    };
    let reporter = render::reporter(mode);
    let session = Session::new(engine, reporter.clone(), Limits::default())
        .policy(policy)
        .fail_fast(args.fail_fast)
        .build_info(build_info);
    // Unknown types and unloadable components are usage errors, found
    // before the input is even read.
    let plan = match session.prepare(&outputs) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };

    let input = args.input.clone();
    let image = match tokio::task::spawn_blocking(move || outport_image::open(&input)).await {
        Ok(Ok(image)) => Arc::new(image),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
        Err(e) => {
            eprintln!("error: reading {}: {e}", args.input);
            return EXIT_FAILED;
        }
    };

    let result = match session.run(image, plan).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    reporter.finish();

    // With an output on stdout, the summary goes to stderr.
    let mut summary: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    for r in &result.exporters {
        let dest = r.dest.as_deref().unwrap_or("(no local output)");
        let _ = match &r.status {
            Status::Ok => writeln!(
                summary,
                "{:<8} [{}] {} -> {} {} ({:.2}s)",
                "ok",
                r.id,
                r.kind,
                dest,
                r.response
                    .get("containerimage.digest")
                    .map(String::as_str)
                    .unwrap_or(""),
                r.elapsed.as_secs_f64()
            ),
            Status::Failed(_) => writeln!(
                summary,
                "{:<8} [{}] {} -> {} (nothing written)",
                "failed", r.id, r.kind, dest
            ),
        };
    }
    for r in &result.exporters {
        if let Status::Failed(message) = &r.status {
            eprintln!("error: instance {:?} ({}): {message}", r.id, r.kind);
        }
    }
    let mut code = if result.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    if let Some(path) = &args.iidfile {
        let written =
            outport::iidfile::image_id(&result, args.iidfile_from.as_deref()).and_then(|id| {
                outport::atomic_write(path, id.as_bytes()).map_err(|e| outport::Error::Io {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            });
        match written {
            Ok(()) => {
                let _ = writeln!(summary, "image ID -> {}", path.display());
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_FAILED;
            }
        }
    }
    if let Some(path) = &args.metadata_file {
        if let Err(e) = outport::metadata::write(path, &result) {
            eprintln!("error: metadata file: {e}");
            return EXIT_FAILED;
        }
        let _ = writeln!(summary, "metadata -> {}", path.display());
    }
    code
}
