//! The rows of the real-image and registry tables ([`crate::real_cases`],
//! [`crate::pull_cases`]): timing a case, each run in a fresh filesystem
//! ([`crate::fresh_fs`]), and printing the rows and writing them and the
//! targets as JSON.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{Value, json};

use crate::cases::Env;
use crate::fresh_fs;
use crate::registry::Registry;
use crate::runner::{self, Cmd, median};

/// One measured case.
#[derive(Debug)]
pub struct RealRow {
    /// What ran.
    pub name: String,
    /// Each run's wall time, in seconds (empty: it failed).
    pub secs: Vec<f64>,
    /// CPU seconds (user + system) of the run with the median wall time.
    pub cpu: f64,
    /// Largest peak RSS over the runs, in bytes.
    pub max_rss: u64,
    /// Blob bytes the counted registry ([`Setup::served_by`]) answered
    /// per timed run.
    pub downloaded: Option<u64>,
    /// Why it was not measured, if it was not.
    pub note: Option<String>,
}

impl RealRow {
    /// The median wall time, if it ran.
    pub fn median(&self) -> Option<f64> {
        (!self.secs.is_empty()).then(|| median(&self.secs))
    }
}

/// What a timed run needs besides its command, all untimed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup<'a> {
    /// Run after the filesystem is made (filling the blob store).
    pub fill: Option<&'a Cmd>,
    /// Started with empty storage in the fresh filesystem for the run.
    pub registry: Option<&'a Registry>,
    /// The registry whose blob bytes served during the timed part are
    /// counted.
    pub served_by: Option<&'a Registry>,
}

/// Times `cmd` `env.runs` times, each in a fresh filesystem where it
/// writes `outputs`.
pub fn time(
    env: &Env,
    name: &str,
    cmd: &Cmd,
    outputs: &[PathBuf],
    setup: Setup<'_>,
) -> Result<RealRow> {
    let served = || setup.served_by.map(Registry::served_blob_bytes).transpose();
    let mut runs = Vec::new();
    let mut downloaded = 0;
    for _ in 0..env.runs {
        let _fs = env.fresh.before_run(outputs)?;
        if let Some(fill) = setup.fill {
            runner::run_ok(&env.fresh.cmd(fill))?;
            fresh_fs::sync()?;
        }
        let _registry = setup.registry.map(Registry::start).transpose()?;
        let before = served()?;
        let run = runner::run(&env.fresh.cmd(cmd))?;
        let after = served()?;
        downloaded += after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b));
        if !run.success {
            let first = run.stderr.lines().next().unwrap_or("no message").to_owned();
            fresh_fs::clean(outputs)?;
            return Ok(RealRow {
                name: name.to_owned(),
                secs: Vec::new(),
                cpu: 0.0,
                max_rss: 0,
                downloaded: None,
                note: Some(format!("failed: {first}")),
            });
        }
        runs.push(run);
    }
    fresh_fs::clean(outputs)?;
    let count = runs.len() as u64;
    runs.sort_by_key(|r| r.elapsed);
    let middle = &runs[runs.len() / 2];
    Ok(RealRow {
        name: name.to_owned(),
        secs: runs.iter().map(|r| r.elapsed.as_secs_f64()).collect(),
        cpu: middle.cpu_secs,
        max_rss: runs.iter().map(|r| r.max_rss).max().unwrap_or(0),
        downloaded: setup.served_by.map(|_| downloaded / count),
        note: None,
    })
}

/// The median of the row called `name`, if it ran.
pub fn find(rows: &[RealRow], name: &str) -> Option<f64> {
    rows.iter().find(|r| r.name == name)?.median()
}

/// Prints `rows` as a table; `downloads`: with the blob bytes column.
pub fn print_rows(rows: &[RealRow], downloads: bool) {
    let (head, rule) = match downloads {
        true => (" blob bytes downloaded per run |", "---:|"),
        false => ("", ""),
    };
    println!("| case | median | CPU s (cores busy) | peak RSS |{head}\n|---|---:|---:|---:|{rule}");
    for row in rows {
        let bytes = match (downloads, row.downloaded) {
            (false, _) => String::new(),
            (true, Some(b)) => format!(" {b} |"),
            (true, None) => "  |".to_owned(),
        };
        match (row.median(), &row.note) {
            (Some(m), _) => println!(
                "| {} | {m:.2} s | {:.1} ({:.2}) | {:.1} MiB |{bytes}",
                row.name,
                row.cpu,
                row.cpu / m,
                row.max_rss as f64 / f64::from(1 << 20)
            ),
            (None, note) => println!(
                "| {} | {} | | |{}",
                row.name,
                note.as_deref().unwrap_or(""),
                if downloads { " |" } else { "" }
            ),
        }
    }
}

/// `rows` as JSON; `downloads`: with the blob bytes downloaded.
pub fn rows_json(rows: &[RealRow], downloads: bool) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut row = json!({
                "case": r.name,
                "runs_secs": r.secs,
                "median_secs": r.median(),
                "cpu_secs": r.cpu,
                "max_rss_bytes": r.max_rss,
                "note": r.note,
            });
            if downloads {
                row["blob_bytes_downloaded_per_run"] = json!(r.downloaded);
            }
            row
        })
        .collect()
}

/// A target: its name, the ratio (if both rows ran), whether it is met.
pub type Target = (&'static str, Option<f64>, bool);

/// `(name, slower, faster, least)`: the slower row's median over the
/// faster's must be at least `least`.
pub fn speedup(
    rows: &[RealRow],
    &(name, slow, fast, least): &(&'static str, &str, &str, f64),
) -> Target {
    let ratio = find(rows, slow).zip(find(rows, fast)).map(|(s, f)| s / f);
    (name, ratio, ratio.is_some_and(|r| r >= least))
}

/// `(name, case, reference, most)`: the case's median over the
/// reference's must be at most `most`.
pub fn cost(
    rows: &[RealRow],
    &(name, case, reference, most): &(&'static str, &str, &str, f64),
) -> Target {
    let ratio = find(rows, case)
        .zip(find(rows, reference))
        .map(|(c, r)| c / r);
    (name, ratio, ratio.is_some_and(|r| r <= most))
}

/// Targets as JSON.
pub fn targets_json(targets: Vec<Target>) -> Vec<Value> {
    targets
        .into_iter()
        .map(|(name, ratio, met)| json!({"target": name, "ratio": ratio, "met": met}))
        .collect()
}
