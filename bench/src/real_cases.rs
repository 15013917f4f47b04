//! What is measured on the real image ([`crate::real_image`]), gzip and
//! zstd: the floors plain tools set in the same run (decompressing every
//! layer one after another, GNU tar unpacking each layer in order, `umoci
//! unpack`, `skopeo copy` to zstd) and outport's `local`, `tar`, `oci`
//! recompressed to zstd and `docker` decompressed; the ratios the issue
//! sets as targets; wall time, CPU time (how many cores a case kept busy)
//! and peak RSS of each.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

use crate::cases::Env;
use crate::real_image::{Packing, RealImage, TAG};
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
    /// Why it was not measured, if it was not.
    pub note: Option<String>,
}

impl RealRow {
    /// The median wall time, if it ran.
    pub(crate) fn median(&self) -> Option<f64> {
        (!self.secs.is_empty()).then(|| median(&self.secs))
    }
}

/// Everything measured on one variant.
#[derive(Debug)]
pub struct RealGroup {
    /// gzip or zstd.
    pub packing: Packing,
    /// Bytes of the layers, compressed and as tars.
    pub compressed: u64,
    pub uncompressed: u64,
    /// The rows, in table order.
    pub rows: Vec<RealRow>,
}

const SERIAL: &str = "decompress every layer, one after another (floor)";
const GNU_TAR: &str = "GNU tar -x of each layer in order (floor)";
const UMOCI: &str = "umoci unpack";
const SKOPEO_ZSTD: &str = "skopeo copy to zstd";
const LOCAL: &str = "outport local";
const TAR: &str = "outport tar (rootfs)";
const OCI_ZSTD: &str = "outport oci, compression=zstd,force-compression=true";
const DOCKER_PLAIN: &str = "outport docker, compression=uncompressed,force-compression=true";

/// The targets (set for the gzip image): (row, floor, most allowed
/// row/floor) for a time, or with the floor first, (floor, row, least
/// floor/row) for a speed-up. The zstd image shows the same ratios, as
/// figures only.
const TARGETS: &[(&str, &str, &str, f64)] = &[
    ("local ≤ 0.8× GNU tar", LOCAL, GNU_TAR, 0.8),
    ("tar ≤ 0.8× the serial decompression", TAR, SERIAL, 0.8),
];
const SPEEDUP: (&str, &str, &str, f64) = (
    "oci zstd ≥ 3× faster than skopeo",
    SKOPEO_ZSTD,
    OCI_ZSTD,
    3.0,
);

/// Measures every case on `image`.
pub fn measure(env: &Env, image: &RealImage) -> Result<RealGroup> {
    let work = env.work.join("real");
    std::fs::create_dir_all(&work)?;
    // Warm the page cache with the layers, and the compile cache with the
    // built-ins (untimed).
    runner::run_ok(&Cmd::new(
        "cat",
        image.layers.iter().map(|l| l.clone().into_os_string()),
    ))?;
    runner::run_ok(&Cmd::new(&env.outport, ["exporters"]).env("OUTPORT_CACHE_DIR", &env.cache))?;
    let mut rows = Vec::new();
    for (name, cmd, outputs) in cases(env, image, &work) {
        eprintln!("  {name}");
        rows.push(time(env, name, &cmd, &outputs)?);
    }
    Ok(RealGroup {
        packing: image.packing,
        compressed: image.compressed,
        uncompressed: image.uncompressed,
        rows,
    })
}

type Case = (&'static str, Cmd, Vec<PathBuf>);

fn cases(env: &Env, image: &RealImage, work: &Path) -> Vec<Case> {
    let layers: Vec<OsString> = image
        .layers
        .iter()
        .map(|l| l.clone().into_os_string())
        .collect();
    let (decompress, tar_flag) = match image.packing {
        Packing::Gzip => ("gzip -dc", "-xzf"),
        Packing::Zstd => ("zstd -dcq", "--zstd -xf"),
    };
    let script = |body: &str| {
        let mut args: Vec<OsString> = vec!["-c".into(), body.into(), "bash".into()];
        args.extend(layers.iter().cloned());
        Cmd::new("bash", args)
    };
    let gnu_dest = work.join("gnu-tar");
    let mut cases: Vec<Case> = vec![
        (
            SERIAL,
            script(&format!(
                r#"set -e; for l; do {decompress} "$l" > /dev/null; done"#
            )),
            Vec::new(),
        ),
        (
            GNU_TAR,
            script(&format!(
                r#"set -e; d={}; mkdir -p "$d"; for l; do tar -C "$d" {tar_flag} "$l"; done"#,
                gnu_dest.display()
            )),
            vec![gnu_dest],
        ),
    ];
    // Debian's umoci (0.4.7) reads no zstd layer.
    if image.packing == Packing::Gzip {
        cases.extend(gzip_floors(image, work));
    }
    let outport = |name, spec: &str, out: &str| -> Case {
        let dest = work.join(out);
        let args: Vec<OsString> = vec![
            "export".into(),
            image.dir.clone().into(),
            "--progress".into(),
            "quiet".into(),
            "--output".into(),
            format!("{spec},dest={}", dest.display()).into(),
        ];
        let cmd = Cmd::new(&env.outport, args).env("OUTPORT_CACHE_DIR", &env.cache);
        (name, cmd, vec![dest])
    };
    cases.push(outport(LOCAL, "type=local", "outport-local"));
    cases.push(outport(TAR, "type=tar", "outport-rootfs.tar"));
    if image.packing == Packing::Gzip {
        cases.push(outport(
            OCI_ZSTD,
            "type=oci,tar=false,compression=zstd,force-compression=true",
            "outport-oci-zstd",
        ));
        cases.push(outport(
            DOCKER_PLAIN,
            "type=docker,compression=uncompressed,force-compression=true",
            "outport-docker.tar",
        ));
    }
    cases
}

/// The floors only a gzip image has: `umoci unpack` and skopeo's copy to
/// zstd.
fn gzip_floors(image: &RealImage, work: &Path) -> [Case; 2] {
    let umoci_dest = work.join("umoci");
    let skopeo_dest = work.join("skopeo-zstd");
    let src = format!("oci:{}:{TAG}", image.dir.display());
    [
        (
            UMOCI,
            Cmd::new(
                "umoci",
                [
                    OsString::from("unpack"),
                    "--image".into(),
                    format!("{}:{TAG}", image.dir.display()).into(),
                    umoci_dest.clone().into(),
                ],
            ),
            vec![umoci_dest],
        ),
        (
            SKOPEO_ZSTD,
            Cmd::new(
                "skopeo",
                [
                    "copy".to_owned(),
                    "--quiet".to_owned(),
                    "--dest-compress-format".to_owned(),
                    "zstd".to_owned(),
                    src,
                    format!("oci:{}:{TAG}", skopeo_dest.display()),
                ],
            ),
            vec![skopeo_dest],
        ),
    ]
}

/// Times `cmd` `env.runs` times, removing `outputs` and syncing before each.
pub(crate) fn time(env: &Env, name: &str, cmd: &Cmd, outputs: &[PathBuf]) -> Result<RealRow> {
    let mut runs = Vec::new();
    for _ in 0..env.runs {
        clean(outputs)?;
        runner::run_ok(&Cmd::new("sync", Vec::<OsString>::new()))?;
        let run = runner::run(cmd)?;
        if !run.success {
            clean(outputs)?;
            let first = run.stderr.lines().next().unwrap_or("no message").to_owned();
            return Ok(RealRow {
                name: name.to_owned(),
                secs: Vec::new(),
                cpu: 0.0,
                max_rss: 0,
                note: Some(format!("failed: {first}")),
            });
        }
        runs.push(run);
    }
    clean(outputs)?;
    runs.sort_by_key(|r| r.elapsed);
    let middle = &runs[runs.len() / 2];
    Ok(RealRow {
        name: name.to_owned(),
        secs: runs.iter().map(|r| r.elapsed.as_secs_f64()).collect(),
        cpu: middle.cpu_secs,
        max_rss: runs.iter().map(|r| r.max_rss).max().unwrap_or(0),
        note: None,
    })
}

/// Removes each of `outputs` (a file or a directory) that exists.
pub(crate) fn clean(outputs: &[PathBuf]) -> Result<()> {
    for path in outputs {
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn find(group: &RealGroup, name: &str) -> Option<f64> {
    group.rows.iter().find(|r| r.name == name)?.median()
}

/// Each target of the group: its name, the ratio, whether it is met.
fn targets(group: &RealGroup) -> Vec<(&'static str, Option<f64>, bool)> {
    let mut out = Vec::new();
    for &(name, row, floor, most) in TARGETS {
        let ratio = find(group, row).zip(find(group, floor)).map(|(a, b)| a / b);
        let met = group.packing == Packing::Gzip && ratio.is_some_and(|r| r <= most);
        out.push((name, ratio, met));
    }
    let (name, slow, fast, least) = SPEEDUP;
    if let (Some(s), Some(f)) = (find(group, slow), find(group, fast)) {
        let ratio = s / f;
        out.push((name, Some(ratio), ratio >= least));
    }
    out
}

/// Prints the group's table and its targets.
pub fn print(group: &RealGroup) {
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "\n## real image, {} layers ({:.0} MB compressed, {:.0} MB of tar)\n",
        group.packing.name(),
        mb(group.compressed),
        mb(group.uncompressed)
    );
    println!("| case | median | CPU s (cores busy) | peak RSS |\n|---|---:|---:|---:|");
    for row in &group.rows {
        match (row.median(), &row.note) {
            (Some(m), _) => println!(
                "| {} | {m:.2} s | {:.1} ({:.2}) | {:.1} MiB |",
                row.name,
                row.cpu,
                row.cpu / m,
                row.max_rss as f64 / f64::from(1 << 20)
            ),
            (None, note) => println!("| {} | {} | | |", row.name, note.as_deref().unwrap_or("")),
        }
    }
    for (name, ratio, met) in targets(group) {
        let verdict = match (group.packing, met) {
            (Packing::Zstd, _) => "a target for gzip only",
            (_, true) => "met",
            (_, false) => "MISSED",
        };
        match ratio {
            Some(r) => println!("- {name}: {r:.2}× ({verdict})"),
            None => println!("- {name}: not measured"),
        }
    }
}

/// The group as JSON, for `results.json`.
pub fn to_json(group: &RealGroup) -> Value {
    let rows: Vec<Value> = group
        .rows
        .iter()
        .map(|r| {
            json!({
                "case": r.name,
                "runs_secs": r.secs,
                "median_secs": r.median(),
                "cpu_secs": r.cpu,
                "max_rss_bytes": r.max_rss,
                "note": r.note,
            })
        })
        .collect();
    let targets: Vec<Value> = targets(group)
        .into_iter()
        .map(|(name, ratio, met)| json!({"target": name, "ratio": ratio, "met": met}))
        .collect();
    json!({
        "image": format!("real-{}", group.packing.name()),
        "compressed_bytes": group.compressed,
        "uncompressed_bytes": group.uncompressed,
        "rows": rows,
        "targets": targets,
    })
}
