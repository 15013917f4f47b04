//! outport-bench: how fast outport exports an image, measured against the
//! physical limit of the machine (a plain `cp` of the same bytes and their
//! hardware-accelerated sha256 with `openssl dgst -sha256`, whichever is
//! slower) and against skopeo doing the same copies, as ratios taken in the
//! same run. Not a test: `scripts/bench` runs it and prints a table; the
//! results also go to `target/bench/results.json`.
//!
//! - [`inputs`] generates the images deterministically (cached);
//! - [`runner`] times commands (median of several runs, peak RSS by `wait4`);
//! - [`fresh_fs`] makes a fresh filesystem for each timed run's outputs
//!   (and [`interrupt`] unmounts it after Ctrl-C);
//! - [`registry`] runs a throw-away `docker-registry` on loopback;
//! - [`cases`] says what is measured for each image;
//! - [`components`] times compiling and instantiating the built-ins;
//! - [`real_image`] builds the real image (this machine's `/usr` trees as
//!   gzip and zstd layers) and [`real_cases`] measures it against the
//!   floors of plain tools (decompression, GNU tar, umoci, skopeo);
//! - [`pull_cases`] pulls the real gzip image from a local registry
//!   (`docker://`, cold and warm blob store) against skopeo and umoci, and
//!   pushes it to two names against one; [`timed`] times their cases and
//!   prints and writes their rows;
//! - [`report`] prints the table and writes the JSON.

mod cases;
mod components;
mod fresh_fs;
mod inputs;
mod interrupt;
mod pull_cases;
mod real_cases;
mod real_image;
mod registry;
mod report;
mod runner;
mod timed;

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
    /// Which images: `all`, `synthetic` (the generated ones), `real`
    /// (this machine's /usr as gzip and zstd layers) or `registry` (the
    /// real gzip image pulled from and pushed to a local registry).
    #[arg(long, default_value = "all", value_parser = ["all", "synthetic", "real", "registry"])]
    images: String,
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
    let synthetic = args.images == "all" || args.images == "synthetic";
    let images = if synthetic {
        inputs::ensure_all(&dir.join("inputs"), args.size << 20)?
    } else {
        Vec::new()
    };
    let real = if args.images == "synthetic" {
        Vec::new()
    } else {
        real_image::ensure(&dir.join("inputs"))?
    };

    let work = dir.join("work");
    let fresh = fresh_fs::FreshFs::prepare(
        &work,
        &dir.join("outputs.ext4"),
        filesystem_bytes(&images, &real),
    )?;
    eprintln!("== {} ==", fresh.describe());
    let env = cases::Env {
        outport,
        registry: registry::Registry::new(&work)?,
        dir: dir.clone(),
        work,
        fresh,
        cache: dir.join("component-cache"),
        runs: args.runs,
    };
    let components = match images.iter().find(|i| i.role == inputs::Role::MemoryOnly) {
        Some(small) => {
            eprintln!("== components ==");
            let components = components::measure(&env, &small.dir)?;
            // Fill the compile cache the timed exports use.
            components::cli_run(&env, &small.dir, &env.cache)?;
            Some(components)
        }
        None => None,
    };
    let mut groups = Vec::new();
    for image in &images {
        eprintln!("== {} ==", image.title);
        groups.push(cases::measure(&env, image)?);
    }
    let mut real_groups = Vec::new();
    let real_cases = args.images == "all" || args.images == "real";
    for image in real.iter().filter(|_| real_cases) {
        eprintln!("== real image, {} layers ==", image.packing.name());
        real_groups.push(real_cases::measure(&env, image)?);
    }

    let mut pull = None;
    let gzip = real.iter().find(|i| i.packing == real_image::Packing::Gzip);
    if let Some(image) = gzip.filter(|_| args.images == "all" || args.images == "registry") {
        eprintln!("== real gzip image from a registry ==");
        pull = Some(pull_cases::measure(&env, image)?);
    }

    let results = report::Results {
        filesystem: env.fresh.describe(),
        filesystem_json: env.fresh.to_json(),
        runs: args.runs,
        size_mib: args.size,
        groups,
        components,
        real: real_groups,
        pull,
    };
    report::print(&results);
    let json = dir.join("results.json");
    report::write_json(&results, &json)?;
    println!("\nresults written to {}", json.display());
    Ok(())
}

/// The size of the outputs' filesystem: the largest case's outputs and
/// temporary files, with room to spare. A synthetic image is written up to
/// three times at once (plus skopeo's temporary copy); the real image's
/// tree and the uncompressed layers it is made from are both written, with
/// the blob store of a pull.
fn filesystem_bytes(images: &[inputs::Image], real: &[real_image::RealImage]) -> u64 {
    let synthetic = images.iter().map(|i| 4 * i.bytes).max().unwrap_or(0);
    let real = (real.iter())
        .map(|i| 2 * (i.uncompressed + i.compressed))
        .max()
        .unwrap_or(0);
    let spare = 1 << 30;
    (synthetic.max(real) + spare).next_multiple_of(1 << 20)
}
