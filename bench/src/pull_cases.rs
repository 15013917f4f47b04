//! The real gzip image ([`crate::real_image`]) in a local `docker-registry`
//! (pushed there by skopeo, untimed): `curl` downloading its layers, four
//! at once, to files (the floor); outport pulling it (`docker://`) to
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
use crate::fresh_fs;
use crate::real_image::{RealImage, TAG};
use crate::registry::Registry;
use crate::runner::{self, Cmd};
use crate::timed::{self, RealRow, Setup, Target};

const CURL: &str = "curl, every layer, 4 at once (floor)";
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
    ("oci tar / curl (no target)", OCI, CURL, f64::INFINITY),
];

/// Everything measured.
#[derive(Debug)]
pub struct PullGroup {
    /// Bytes of the image's layers, compressed.
    pub compressed: u64,
    /// The rows, in table order (pulls with the blob bytes downloaded).
    pub rows: Vec<RealRow>,
}

/// Starts a registry, pushes `image` to it and measures every case.
pub fn measure(env: &Env, image: &RealImage) -> Result<PullGroup> {
    // The source stays on the main disk: the cases only read it.
    let registry = Registry::new(&env.dir.join("pull"))?;
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
    link_store(&env.cache.join("blobs"), &env.fresh.blob_dir())?;
    let mut rows = Vec::new();
    for case in cases(env, image, &source) {
        eprintln!("  {}", case.name);
        let mut outputs = case.outputs.clone();
        if case.pull && case.fill.is_none() {
            outputs.push(env.fresh.blob_dir());
        }
        let setup = Setup {
            fill: case.fill.as_ref(),
            registry: case.push.then_some(&env.registry),
            served_by: case.pull.then_some(&registry),
        };
        rows.push(timed::time(env, case.name, &case.cmd, &outputs, setup)?);
    }
    Ok(PullGroup {
        compressed: image.compressed,
        rows,
    })
}

/// Points outport's blob store (`$OUTPORT_CACHE_DIR/blobs`) at `target`,
/// in the output directory, so that the store is written in each run's
/// fresh filesystem; the compile cache stays where it is.
fn link_store(store: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(store).is_ok_and(|t| t == target) {
        return Ok(());
    }
    fresh_fs::clean(&[store.to_owned()])?;
    std::os::unix::fs::symlink(target, store)
        .with_context(|| format!("linking {} to {}", store.display(), target.display()))
}

/// A case and what its runs need.
struct Case {
    name: &'static str,
    cmd: Cmd,
    outputs: Vec<PathBuf>,
    /// Pulls from the source registry: its downloads are counted and the
    /// blob store starts empty (unless `fill` fills it).
    pull: bool,
    /// Run before each timed run, untimed.
    fill: Option<Cmd>,
    /// Pushes to the benchmark's registry, started empty for each run.
    push: bool,
}

fn cases(env: &Env, image: &RealImage, source: &str) -> Vec<Case> {
    let work = env.work.join("pull");
    let docker = format!("docker://{source}");
    // A pull from the source registry, its store empty.
    let plain = |name, cmd, outputs| Case {
        name,
        cmd,
        outputs,
        pull: true,
        fill: None,
        push: false,
    };
    let outport = |name, spec: &str, dest: PathBuf| -> Case {
        let mut args: Vec<OsString> = vec!["export".into(), (&docker).into()];
        args.extend(["--src-insecure", "--progress", "quiet", "--output"].map(OsString::from));
        args.push(format!("{spec},dest={}", dest.display()).into());
        let cmd = Cmd::new(&env.outport, args).env("OUTPORT_CACHE_DIR", &env.cache);
        plain(name, cmd, vec![dest])
    };
    let (skopeo_tar, skopeo_dir) = (work.join("skopeo.tar"), work.join("skopeo-layout"));
    let umoci_dir = work.join("umoci-rootfs");
    let skopeo = |to: String| {
        let args = [
            "copy",
            "--quiet",
            "--insecure-policy",
            "--src-tls-verify=false",
        ];
        let mut args = args.map(str::to_owned).to_vec();
        args.extend([docker.clone(), to]);
        args
    };
    let skopeo_umoci = format!(
        "set -e; skopeo {}; umoci unpack --image {}:{TAG} {}",
        skopeo(format!("oci:{}:{TAG}", skopeo_dir.display())).join(" "),
        skopeo_dir.display(),
        umoci_dir.display()
    );
    // The warm run: its store filled by a first run to another file (so
    // that nothing is deleted before the timed run).
    let mut warm = outport(WARM, "type=oci", work.join("outport-warm.tar"));
    let fill = outport(WARM, "type=oci", work.join("outport-fill.tar"));
    warm.outputs.extend(fill.outputs);
    warm.fill = Some(fill.cmd);
    let skopeo_oci = Cmd::new(
        "skopeo",
        skopeo(format!("oci-archive:{}", skopeo_tar.display())),
    );
    vec![
        plain(
            CURL,
            curl(image, source, &work.join("curl")),
            vec![work.join("curl")],
        ),
        outport(OCI, "type=oci", work.join("outport.tar")),
        plain(SKOPEO_OCI, skopeo_oci, vec![skopeo_tar]),
        outport(LOCAL, "type=local", work.join("outport-local")),
        plain(
            SKOPEO_UMOCI,
            Cmd::new("bash", ["-c".to_owned(), skopeo_umoci]),
            vec![skopeo_dir, umoci_dir],
        ),
        warm,
        push_case(env, image, PUSH_ONE, "one-$n/app:1"),
        push_case(env, image, PUSH_TWO, "one-$n/app:1,two-$n/app:1"),
    ]
}

/// The floor of a pull: `curl` downloading every layer of `image` from
/// `source` (`ADDR/REPO:TAG`), four at once (HTTP/1.1, a connection each),
/// each to a file in `dir`: the registry's serving rate and one write.
fn curl(image: &RealImage, source: &str, dir: &Path) -> Cmd {
    let (addr, name) = source.split_once('/').unwrap_or((source, ""));
    let repo = name.rsplit_once(':').map_or(name, |(repo, _)| repo);
    let mut args: Vec<OsString> = [
        "--silent",
        "--show-error",
        "--fail",
        "--parallel",
        "--parallel-max",
        "4",
        "--create-dirs",
    ]
    .map(OsString::from)
    .to_vec();
    for layer in &image.layers {
        let hex = layer.file_name().unwrap_or_default().to_string_lossy();
        args.extend([
            "--output".into(),
            dir.join(hex.as_ref()).into(),
            format!("http://{addr}/v2/{repo}/blobs/sha256:{hex}").into(),
        ]);
    }
    Cmd::new("curl", args)
}

/// Pushing `image` from its layout to the benchmark's registry under
/// `names` (`$n` a new number for each run).
fn push_case(env: &Env, image: &RealImage, name: &'static str, names: &str) -> Case {
    let addr = &env.registry.addr;
    let names: Vec<String> = names.split(',').map(|n| format!("{addr}/{n}")).collect();
    let body = format!(
        r#"n=$(date +%s%N); exec "$0" export oci:{}:{TAG} --progress quiet --output "type=registry,\"name={}\",registry.insecure=true""#,
        image.dir.display(),
        names.join(","),
    );
    let args = [
        OsString::from("-c"),
        body.into(),
        env.outport.clone().into(),
    ];
    let cmd = Cmd::new("bash", args).env("OUTPORT_CACHE_DIR", &env.cache);
    let (pull, fill, push) = (false, None, true);
    Case {
        name,
        cmd,
        outputs: Vec::new(),
        pull,
        fill,
        push,
    }
}

/// Each target: its name, the ratio, whether it is met.
fn targets(group: &PullGroup) -> Vec<Target> {
    let speedups = SPEEDUPS.iter().map(|t| timed::speedup(&group.rows, t));
    let costs = COSTS.iter().map(|t| timed::cost(&group.rows, t));
    speedups.chain(costs).collect()
}

/// Bytes the warm run downloaded, if it was measured.
fn warm_bytes(group: &PullGroup) -> Option<u64> {
    group.rows.iter().find(|r| r.name == WARM)?.downloaded
}

/// Prints the table and the targets.
pub fn print(group: &PullGroup) {
    println!(
        "\n## real gzip image from a local registry ({:.0} MB of layers)\n",
        group.compressed as f64 / 1e6
    );
    timed::print_rows(&group.rows, true);
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
    json!({
        "image": "real-gzip, docker://",
        "compressed_bytes": group.compressed,
        "rows": timed::rows_json(&group.rows, true),
        "targets": timed::targets_json(targets(group)),
        "warm_bytes_downloaded": warm_bytes(group),
    })
}
