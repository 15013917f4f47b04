//! The real gzip image ([`crate::real_image`]) in a local `docker-registry`
//! (pushed there by skopeo, untimed): outport pulling it (`docker://`) to
//! an `oci` tarball and to a `local` directory with an empty blob store,
//! against `skopeo copy docker:// oci-archive:` and `skopeo copy` then
//! `umoci unpack`; the same `oci` export again with the store filled by a
//! first run (warm); and pushing the image from its layout to two names
//! of one registry (the second mounts every blob from the first) against
//! one name. The registry's access log says how many blob bytes each case
//! downloaded per run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::cases::Env;
use crate::real_cases::{RealRow, clean, time};
use crate::real_image::{RealImage, TAG};
use crate::registry::Registry;
use crate::runner::{self, Cmd};

const OCI: &str = "outport docker:// -> oci tar, empty blob store";
const SKOPEO_OCI: &str = "skopeo copy docker:// oci-archive:";
const LOCAL: &str = "outport docker:// -> local, empty blob store";
const SKOPEO_UMOCI: &str = "skopeo copy docker:// oci: + umoci unpack";
const WARM: &str = "outport docker:// -> oci tar, warm blob store";
const PUSH_ONE: &str = "outport push, one name";
const PUSH_TWO: &str = "outport push, two names on one registry";

/// The targets: (name, slower case, faster case, least slower/faster)
/// for a speed-up; (name, case, reference, most case/reference) for a cost.
const SPEEDUPS: &[(&str, &str, &str, f64)] = &[
    ("oci tar ≥ 2× faster than skopeo", SKOPEO_OCI, OCI, 2.0),
    (
        "local ≥ 3× faster than skopeo + umoci",
        SKOPEO_UMOCI,
        LOCAL,
        3.0,
    ),
];
const COSTS: &[(&str, &str, &str, f64)] = &[
    ("two names ≤ 1.2× one", PUSH_TWO, PUSH_ONE, 1.2),
    ("warm / cold (no target)", WARM, OCI, f64::INFINITY),
];

/// One case and the blob bytes the registry served per run of it.
#[derive(Debug)]
pub struct PullRow {
    /// Its times.
    pub row: RealRow,
    /// Bytes of blob `GET`s answered per timed run (pulls only).
    pub downloaded: Option<u64>,
}

/// Everything measured.
#[derive(Debug)]
pub struct PullGroup {
    /// Bytes of the image's layers, compressed.
    pub compressed: u64,
    /// The rows, in table order.
    pub rows: Vec<PullRow>,
}

/// Starts a registry, pushes `image` to it and measures every case.
pub fn measure(env: &Env, image: &RealImage) -> Result<PullGroup> {
    let work = env.work.join("pull");
    std::fs::create_dir_all(&work)?;
    let registry = Registry::new(&work)?;
    let _running = registry.start()?;
    let source = format!("{}/real/app:1", registry.addr);
    eprintln!("  skopeo copy to {source} (untimed)");
    runner::run_ok(&Cmd::new(
        "skopeo",
        [
            "copy".to_owned(),
            "--quiet".to_owned(),
            "--insecure-policy".to_owned(),
            "--dest-tls-verify=false".to_owned(),
            format!("oci:{}:{TAG}", image.dir.display()),
            format!("docker://{source}"),
        ],
    ))?;
    // The compile cache warm (untimed), as for every timed export.
    runner::run_ok(&Cmd::new(&env.outport, ["exporters"]).env("OUTPORT_CACHE_DIR", &env.cache))?;
    let store = env.cache.join("blobs");
    let mut rows = Vec::new();
    for (name, cmd, mut outputs, pull) in cases(env, image, &work, &registry.addr, &source) {
        eprintln!("  {name}");
        if name == WARM {
            // Fill the store once, untimed.
            clean(&outputs)?;
            runner::run_ok(&cmd)?;
        } else if pull {
            outputs.push(store.clone());
        }
        let before = served_bytes(&registry.access_log())?;
        let row = time(env, name, &cmd, &outputs)?;
        let after = served_bytes(&registry.access_log())?;
        let downloaded = (pull && !row.secs.is_empty())
            .then(|| after.saturating_sub(before) / row.secs.len() as u64);
        rows.push(PullRow { row, downloaded });
    }
    Ok(PullGroup {
        compressed: image.compressed,
        rows,
    })
}

/// A case: its name, command, outputs and whether it pulls.
type Case = (&'static str, Cmd, Vec<PathBuf>, bool);

fn cases(env: &Env, image: &RealImage, work: &Path, addr: &str, source: &str) -> Vec<Case> {
    let outport = |name, input: &str, spec: String, dest: Option<PathBuf>| -> Case {
        let mut args: Vec<OsString> = vec!["export".into(), input.into()];
        args.extend(["--src-insecure", "--progress", "quiet", "--output"].map(OsString::from));
        args.push(spec.into());
        let cmd = Cmd::new(&env.outport, args).env("OUTPORT_CACHE_DIR", &env.cache);
        (name, cmd, dest.into_iter().collect(), true)
    };
    let docker = format!("docker://{source}");
    let oci_tar = work.join("outport.tar");
    let local = work.join("outport-local");
    let skopeo_tar = work.join("skopeo.tar");
    let skopeo_dir = work.join("skopeo-layout");
    let umoci_dir = work.join("umoci-rootfs");
    let skopeo = |to: String| {
        [
            "copy",
            "--quiet",
            "--insecure-policy",
            "--src-tls-verify=false",
            &docker,
            &to,
        ]
        .map(str::to_owned)
    };
    let skopeo_umoci = format!(
        "set -e; skopeo {}; umoci unpack --image {}:{TAG} {}",
        skopeo(format!("oci:{}:{TAG}", skopeo_dir.display())).join(" "),
        skopeo_dir.display(),
        umoci_dir.display()
    );
    // Each push to new repositories (a fresh pair per run), so that every
    // blob is uploaded: the registry's HEAD is per repository.
    let push = |names: &str| {
        format!(
            r#"n=$(date +%s%N); exec "$0" export oci:{}:{TAG} --progress quiet --output "type=registry,\"name={names}\",registry.insecure=true""#,
            image.dir.display(),
        )
    };
    let script = |body: String| {
        Cmd::new(
            "bash",
            [
                OsString::from("-c"),
                body.into(),
                env.outport.clone().into(),
            ],
        )
        .env("OUTPORT_CACHE_DIR", &env.cache)
    };
    let (oci_spec, local_spec) = (
        format!("type=oci,dest={}", oci_tar.display()),
        format!("type=local,dest={}", local.display()),
    );
    vec![
        outport(OCI, &docker, oci_spec.clone(), Some(oci_tar.clone())),
        (
            SKOPEO_OCI,
            Cmd::new(
                "skopeo",
                skopeo(format!("oci-archive:{}", skopeo_tar.display())),
            ),
            vec![skopeo_tar],
            true,
        ),
        outport(LOCAL, &docker, local_spec, Some(local)),
        (
            SKOPEO_UMOCI,
            Cmd::new("bash", ["-c".to_owned(), skopeo_umoci]),
            vec![skopeo_dir, umoci_dir],
            true,
        ),
        outport(WARM, &docker, oci_spec, Some(oci_tar)),
        (
            PUSH_ONE,
            script(push(&format!("{addr}/one-$n/app:1"))),
            Vec::new(),
            false,
        ),
        (
            PUSH_TWO,
            script(push(&format!("{addr}/one-$n/app:1,{addr}/two-$n/app:1"))),
            Vec::new(),
            false,
        ),
    ]
}

/// Bytes of the answers to blob `GET`s in a registry access log (Apache's
/// combined format: `… "GET /v2/NAME/blobs/sha256:… HTTP/1.1" 200 BYTES …`).
fn served_bytes(log: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("reading the registry's access log {}", log.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (_, request) = line.split_once("\"GET /v2/")?;
            let (target, rest) = request.split_once('"')?;
            if !target.contains("/blobs/sha256:") {
                return None;
            }
            let mut fields = rest.split_whitespace();
            let _status = fields.next()?;
            fields.next()?.parse::<u64>().ok()
        })
        .sum())
}

fn find(group: &PullGroup, name: &str) -> Option<f64> {
    group.rows.iter().find(|r| r.row.name == name)?.row.median()
}

/// Each target: its name, the ratio, whether it is met.
fn targets(group: &PullGroup) -> Vec<(&'static str, Option<f64>, bool)> {
    let mut out = Vec::new();
    for &(name, slow, fast, least) in SPEEDUPS {
        let ratio = find(group, slow).zip(find(group, fast)).map(|(s, f)| s / f);
        out.push((name, ratio, ratio.is_some_and(|r| r >= least)));
    }
    for &(name, case, reference, most) in COSTS {
        let ratio = find(group, case)
            .zip(find(group, reference))
            .map(|(c, r)| c / r);
        out.push((name, ratio, ratio.is_some_and(|r| r <= most)));
    }
    out
}

/// Bytes the warm run downloaded, if it was measured.
fn warm_bytes(group: &PullGroup) -> Option<u64> {
    group.rows.iter().find(|r| r.row.name == WARM)?.downloaded
}

/// Prints the table and the targets.
pub fn print(group: &PullGroup) {
    println!(
        "\n## real gzip image from a local registry ({:.0} MB of layers)\n",
        group.compressed as f64 / 1e6
    );
    println!(
        "| case | median | CPU s (cores busy) | peak RSS | blob bytes downloaded per run |\n|---|---:|---:|---:|---:|"
    );
    for PullRow { row, downloaded } in &group.rows {
        let bytes = downloaded.map_or_else(String::new, |b| format!("{b}"));
        match (row.median(), &row.note) {
            (Some(m), _) => println!(
                "| {} | {m:.2} s | {:.1} ({:.2}) | {:.1} MiB | {bytes} |",
                row.name,
                row.cpu,
                row.cpu / m,
                row.max_rss as f64 / f64::from(1 << 20)
            ),
            (None, note) => println!("| {} | {} | | | |", row.name, note.as_deref().unwrap_or("")),
        }
    }
    for (name, ratio, met) in targets(group) {
        let verdict = if met { "met" } else { "MISSED" };
        match ratio {
            Some(r) if name.contains("no target") => println!("- {name}: {r:.2}×"),
            Some(r) => println!("- {name}: {r:.2}× ({verdict})"),
            None => println!("- {name}: not measured"),
        }
    }
    match warm_bytes(group) {
        Some(0) => println!("- the warm run downloads 0 bytes: met"),
        Some(b) => println!("- the warm run downloads 0 bytes: MISSED ({b} bytes)"),
        None => println!("- the warm run downloads 0 bytes: not measured"),
    }
}

/// The group as JSON, for `results.json`.
pub fn to_json(group: &PullGroup) -> Value {
    let rows: Vec<Value> = group
        .rows
        .iter()
        .map(|PullRow { row, downloaded }| {
            json!({
                "case": row.name,
                "runs_secs": row.secs,
                "median_secs": row.median(),
                "cpu_secs": row.cpu,
                "max_rss_bytes": row.max_rss,
                "blob_bytes_downloaded_per_run": downloaded,
                "note": row.note,
            })
        })
        .collect();
    let targets: Vec<Value> = targets(group)
        .into_iter()
        .map(|(name, ratio, met)| json!({"target": name, "ratio": ratio, "met": met}))
        .collect();
    json!({
        "image": "real-gzip, docker://",
        "compressed_bytes": group.compressed,
        "rows": rows,
        "targets": targets,
        "warm_bytes_downloaded": warm_bytes(group),
    })
}
