//! outport-bench: how fast outport exports an image, measured against the
//! physical limit of the machine (a plain `cp` of the same bytes and their
//! hardware-accelerated sha256 with `openssl dgst -sha256`, whichever is
//! slower) and against skopeo doing the same copies, as ratios taken in the
//! same run. Not a test: `scripts/bench` runs it and prints a table; the
//! results also go to `target/bench/results.json`.
//!
//! - [`inputs`] generates the images deterministically (cached);
//! - [`runner`] times commands (median of several runs, peak RSS by `wait4`);
//! - [`registry`] runs a throw-away `docker-registry` on loopback;
//! - [`cases`] says what is measured for each image;
//! - [`components`] times compiling and instantiating the built-ins;
//! - [`report`] prints the table and writes the JSON.

mod cases;
mod components;
mod inputs;
mod registry;
mod report;
mod runner;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;

/// Benchmark outport against cp/openssl and skopeo.
#[derive(Parser, Debug)]
#[command(name = "outport-bench")]
struct Args {
    /// Timed runs per case; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Size of the single-layer image, in MiB (the other inputs scale with it).
    #[arg(long, default_value_t = 1024)]
    size: u64,
    /// The outport binary to measure.
    #[arg(long, default_value = "target/debug/outport")]
    outport: PathBuf,
    /// Where inputs (cached), outputs and results.json go.
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.runs == 0 || args.size == 0 {
        bail!("--runs and --size must be at least 1");
    }
    if !args.outport.is_file() {
        bail!(
            "{} not found: build it first (cargo build -p outport)",
            args.outport.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let outport = std::fs::canonicalize(&args.outport)?;
    let dir = std::fs::canonicalize(&args.dir)?;

    eprintln!("== inputs (under {}) ==", dir.join("inputs").display());
    let images = inputs::ensure_all(&dir.join("inputs"), args.size << 20)?;

    let registry = registry::Registry::new(&dir)?;
    let env = cases::Env {
        outport,
        work: dir.join("work"),
        cache: dir.join("component-cache"),
        runs: args.runs,
        registry,
    };
    std::fs::create_dir_all(&env.work)?;
    let small = images
        .iter()
        .find(|i| i.role == inputs::Role::MemoryOnly)
        .context("no small image")?;
    eprintln!("== components ==");
    let components = components::measure(&env, &small.dir)?;
    // Fill the compile cache the timed exports use.
    components::cli_run(&env, &small.dir, &env.cache)?;
    let mut groups = Vec::new();
    for image in &images {
        eprintln!("== {} ==", image.title);
        groups.push(cases::measure(&env, image)?);
    }

    let results = report::Results {
        runs: args.runs,
        size_mib: args.size,
        groups,
        components,
    };
    report::print(&results);
    let json = dir.join("results.json");
    report::write_json(&results, &json)?;
    println!("\nresults written to {}", json.display());
    Ok(())
}
