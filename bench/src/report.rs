//! The results: a table on standard output and JSON for comparing runs.

use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::cases::{Group, Outcome};
use crate::components::{CliRun, Components};

/// Peak RSS target for the largest image, in bytes.
const RSS_TARGET: u64 = 100 << 20;

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// Where the outputs were written ([`crate::fresh_fs`]).
    pub filesystem: String,
    /// The same, for the JSON.
    pub filesystem_json: Value,
    /// Timed runs per case.
    pub runs: usize,
    /// `--size` in MiB.
    pub size_mib: u64,
    /// One group per image.
    pub groups: Vec<Group>,
    /// Compile and instantiation figures (with the synthetic images).
    pub components: Option<Components>,
    /// The real image's variants.
    pub real: Vec<crate::real_cases::RealGroup>,
    /// The real gzip image pulled from and pushed to a registry.
    pub pull: Option<crate::pull_cases::PullGroup>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// Prints the tables.
pub fn print(results: &Results) {
    println!(
        "\n# outport-bench: median of {} runs, page cache warm\n\n{}",
        results.runs, results.filesystem
    );
    for group in &results.groups {
        print_group(group);
    }
    for group in &results.real {
        crate::real_cases::print(group);
    }
    if let Some(group) = &results.pull {
        crate::pull_cases::print(group);
    }
    if let Some(c) = &results.components {
        print_components(c);
    }
}

/// Prints one group's table and its ratios.
fn print_group(group: &Group) {
    println!(
        "\n## {} ({:.0} MiB of blobs)\n",
        group.title,
        mib(group.bytes)
    );
    println!("| case | median | MB/s | / limit | / skopeo |\n|---|---:|---:|---:|---:|");
    for row in &group.rows {
        let (time, rate) = match &row.outcome {
            Outcome::Timed { .. } => {
                let m = row.median().unwrap_or(f64::NAN);
                (
                    format!("{m:.3} s"),
                    format!("{:.0}", group.bytes as f64 / m / 1e6),
                )
            }
            Outcome::NotAvailable(why) => (why.clone(), "-".to_owned()),
        };
        println!(
            "| {} | {time} | {rate} | {} | {} |",
            row.name,
            fmt_ratio(row.vs_limit),
            fmt_ratio(row.vs_skopeo)
        );
    }
    if let Some(limit) = group.limit {
        println!("\nlimit = max(cp, openssl) = {limit:.3} s");
    }
    if let Some(r) = group.three_vs_slowest {
        println!("three at once / slowest alone = {r:.2}x (target <= 1.5x)");
    }
    if let Some(r) = group.three_vs_floor {
        println!("three at once / (3 x cp + openssl at once) = {r:.2}x");
    }
    if let Some(floor) = group.put_floor {
        let push = |name: &str| {
            let m = group.rows.iter().find(|r| r.name == name)?.median()?;
            Some(m / floor)
        };
        println!(
            "registry PUT floor = {floor:.3} s; outport push / floor = {}, skopeo docker:// / floor = {}",
            fmt_ratio(push("outport registry push")),
            fmt_ratio(push("skopeo docker://"))
        );
    }
    if let Some(rss) = group.outport_peak_rss {
        println!(
            "outport peak RSS (oci tar) = {:.1} MiB (target < {} MiB)",
            mib(rss),
            RSS_TARGET >> 20
        );
    }
}

/// Prints the built-in components' table and the command's cold and warm
/// runs.
fn print_components(c: &Components) {
    println!(
        "\n## built-in components\n\n| component | .wasm | cold compile | load from cache | instantiate (median / p99) |\n|---|---:|---:|---:|---:|"
    );
    for b in &c.builtins {
        println!(
            "| {} | {} KiB | {:.0} ms | {:.2} ms | {:.1} µs / {:.1} µs |",
            b.name,
            b.wasm_bytes >> 10,
            b.compile_ms,
            b.cached_load_ms,
            b.instantiate_us,
            b.instantiate_p99_us
        );
    }
    let line = |what: &str, r: &CliRun| {
        println!(
            "{what}: {:.3} s, {} compiled, {} from the cache",
            r.secs, r.compiled, r.from_cache
        );
    };
    println!("\noutport export of the small image to oci, docker, tar and local:");
    line("  cold (empty OUTPORT_CACHE_DIR)", &c.cold);
    line("  warm", &c.warm);
}

/// Writes the results as JSON to `path`.
pub fn write_json(results: &Results, path: &Path) -> Result<()> {
    let groups: Vec<Value> = results
        .groups
        .iter()
        .map(|g| {
            let rows: Vec<Value> = g
                .rows
                .iter()
                .map(|r| {
                    let (runs, rss, note) = match &r.outcome {
                        Outcome::Timed { secs, max_rss } => (json!(secs), json!(max_rss), None),
                        Outcome::NotAvailable(why) => (json!([]), Value::Null, Some(why)),
                    };
                    json!({
                        "case": r.name,
                        "median_s": r.median(),
                        "runs_s": runs,
                        "max_rss_bytes": rss,
                        "vs_limit": r.vs_limit,
                        "vs_skopeo": r.vs_skopeo,
                        "note": note,
                    })
                })
                .collect();
            json!({
                "image": g.image,
                "title": g.title,
                "bytes": g.bytes,
                "limit_s": g.limit,
                "three_vs_slowest_alone": g.three_vs_slowest,
                "three_vs_floor": g.three_vs_floor,
                "outport_peak_rss_bytes": g.outport_peak_rss,
                "registry_put_floor_s": g.put_floor,
                "rows": rows,
            })
        })
        .collect();
    let builtins: Vec<Value> = (results.components.iter())
        .flat_map(|c| &c.builtins)
        .map(|b| {
            json!({
                "name": b.name,
                "wasm_bytes": b.wasm_bytes,
                "compile_ms": b.compile_ms,
                "cached_load_ms": b.cached_load_ms,
                "instantiate_us": b.instantiate_us,
                "instantiate_p99_us": b.instantiate_p99_us,
            })
        })
        .collect();
    let cli =
        |r: &CliRun| json!({"secs": r.secs, "compiled": r.compiled, "from_cache": r.from_cache});
    let doc = json!({
        "runs": results.runs,
        "size_mib": results.size_mib,
        "output_filesystem": results.filesystem_json,
        "load_average": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_owned()),
        "groups": groups,
        "components": results.components.as_ref().map(|c| json!({
            "builtins": builtins,
            "export_cold": cli(&c.cold),
            "export_warm": cli(&c.warm),
        })),
        "real": results.real.iter().map(crate::real_cases::to_json).collect::<Vec<_>>(),
        "pull": results.pull.as_ref().map(crate::pull_cases::to_json),
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}
