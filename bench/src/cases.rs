//! What is measured on each image: the limit (`cp`, `openssl dgst
//! -sha256`), outport's exporters, skopeo's copies, and three exporters at
//! once; each case the median of several runs with the page cache warm.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;

use crate::fresh_fs::{self, FreshFs};
use crate::inputs::{Image, Role};
use crate::registry::Registry;
use crate::runner::{self, Cmd, median};

/// Shared settings of the run.
#[derive(Debug)]
pub struct Env {
    /// The outport binary.
    pub outport: PathBuf,
    /// The benchmark's directory (inputs, results, the pulls' source
    /// registry).
    pub dir: PathBuf,
    /// Where outputs are written: [`Env::fresh`]'s mount point.
    pub work: PathBuf,
    /// Makes the filesystem of each timed run.
    pub fresh: FreshFs,
    /// outport's compile cache (warm for every timed export).
    pub cache: PathBuf,
    /// Timed runs per case.
    pub runs: usize,
    /// The registry pushes go to (its storage in the output directory).
    pub registry: Registry,
}

/// The outcome of one case.
#[derive(Debug)]
pub enum Outcome {
    /// Every run succeeded.
    Timed {
        /// Each run's wall time, in seconds.
        secs: Vec<f64>,
        /// Largest peak RSS over the runs, in bytes.
        max_rss: u64,
    },
    /// Not measured, and why.
    NotAvailable(String),
}

/// One row of the table.
#[derive(Debug)]
pub struct Row {
    /// What ran (`outport oci tar`).
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
    /// Median / the limit's median.
    pub vs_limit: Option<f64>,
    /// Median / the matching skopeo case's median.
    pub vs_skopeo: Option<f64>,
}

impl Row {
    /// The median time in seconds, when measured.
    pub fn median(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Timed { secs, .. } => Some(median(secs)),
            Outcome::NotAvailable(_) => None,
        }
    }
}

/// Everything measured on one image.
#[derive(Debug)]
pub struct Group {
    /// The image's short name.
    pub image: String,
    /// What the table calls it.
    pub title: String,
    /// Bytes of its blobs.
    pub bytes: u64,
    /// The limit: the slower of `cp` and `openssl dgst -sha256`, in seconds.
    pub limit: Option<f64>,
    /// The rows, in table order.
    pub rows: Vec<Row>,
    /// Three exporters at once / the slowest of them alone.
    pub three_vs_slowest: Option<f64>,
    /// Three at once / the same work done by plain tools at once (three
    /// `cp` and one `openssl dgst`): how far from this machine's floor.
    pub three_vs_floor: Option<f64>,
    /// Peak RSS of `outport` exporting an oci tar, in bytes.
    pub outport_peak_rss: Option<u64>,
    /// The registry's floor (every blob PUT by `curl`, 4 at once), in
    /// seconds: no client can push the blobs faster to this registry.
    pub put_floor: Option<f64>,
}

/// A case: a command, the outputs it makes, and whether it pushes.
struct Case {
    name: &'static str,
    cmd: Cmd,
    outputs: Vec<PathBuf>,
    registry: bool,
}

/// Which row a row is compared with: (row, limit?, skopeo row).
const COMPARISONS: &[(&str, bool, Option<&str>)] = &[
    ("cp", false, None),
    ("openssl dgst -sha256", false, None),
    (THREE_FLOOR, true, None),
    ("outport oci tar", true, Some("skopeo oci-archive")),
    ("outport oci dir", true, None),
    ("outport docker", true, Some("skopeo docker-archive")),
    ("outport local", true, None),
    ("outport tar (rootfs)", true, None),
    ("outport registry push", true, Some("skopeo docker://")),
    (PUT_FLOOR, true, None),
    ("outport oci tar + oci dir + docker", true, None),
    ("skopeo oci-archive", true, None),
    ("skopeo docker-archive", true, None),
    ("skopeo docker://", true, None),
];

/// Every blob PUT to the registry by `curl`, 4 at once (as outport does).
pub const PUT_FLOOR: &str = "registry PUT floor (curl, 4 at once)";

/// Most blobs an image may have for [`PUT_FLOOR`] to be measured.
const PUT_FLOOR_MAX_BLOBS: usize = 16;

/// Uploads every blob file in directory `$2` (named by its hex digest) to
/// the registry at `$1`: a POST for an upload URL, then one monolithic PUT
/// of the file, 4 blobs at once.
const PUT_SCRIPT: &str = r#"set -eu
cd "$2"
ls | xargs -P4 -I{} sh -c '
  loc=$(curl -sS -f -D - -o /dev/null -X POST "http://$0/v2/floor/blobs/uploads/" |
        tr -d "\r" | sed -n "s/^[Ll]ocation: //p")
  case $loc in /*) loc="http://$0$loc";; esac
  case $loc in *\?*) sep="&";; *) sep="?";; esac
  curl -sS -f -o /dev/null -H "Expect:" -H "Content-Type: application/octet-stream"        -T "$1" "$loc${sep}digest=sha256:$1"
' "$1" {}
"#;

/// The three exporters run at once, and alone.
const THREE: [&str; 3] = ["outport oci tar", "outport oci dir", "outport docker"];
const THREE_AT_ONCE: &str = "outport oci tar + oci dir + docker";
/// The floor for three outputs at once: three copies and one hash of the
/// same bytes, all at once.
const THREE_FLOOR: &str = "3 x cp + openssl at once";

/// Measures every case for `image`.
pub fn measure(env: &Env, image: &Image) -> Result<Group> {
    std::fs::create_dir_all(&env.work)?;
    let cases = match image.role {
        Role::Full => full_cases(env, image),
        Role::MemoryOnly => vec![outport_case(
            env,
            image,
            "outport oci tar",
            &[("type=oci", "oci.tar")],
        )],
    };
    // Warm the page cache with the input's bytes (untimed).
    runner::run_ok(&openssl(image))?;
    let mut rows = Vec::new();
    for case in &cases {
        eprintln!("  {}", case.name);
        let outcome = time_case(env, case)?;
        rows.push(Row {
            name: case.name.to_owned(),
            outcome,
            vs_limit: None,
            vs_skopeo: None,
        });
    }
    let find = |rows: &[Row], name: &str| rows.iter().find(|r| r.name == name)?.median();
    let limit = match (find(&rows, "cp"), find(&rows, "openssl dgst -sha256")) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    let ratios: Vec<(Option<f64>, Option<f64>)> = rows
        .iter()
        .map(|row| {
            let Some(&(_, vs_limit, skopeo)) = COMPARISONS.iter().find(|c| c.0 == row.name) else {
                return (None, None);
            };
            let m = row.median();
            let l = if vs_limit { ratio(m, limit) } else { None };
            let s = skopeo.and_then(|s| ratio(m, find(&rows, s)));
            (l, s)
        })
        .collect();
    for (row, (l, s)) in rows.iter_mut().zip(ratios) {
        row.vs_limit = l;
        row.vs_skopeo = s;
    }
    let slowest_alone = THREE
        .iter()
        .map(|name| find(&rows, name))
        .try_fold(0f64, |acc, m| m.map(|m| acc.max(m)));
    let three_vs_slowest = ratio(find(&rows, THREE_AT_ONCE), slowest_alone);
    let three_vs_floor = ratio(find(&rows, THREE_AT_ONCE), find(&rows, THREE_FLOOR));
    let outport_peak_rss = rows.iter().find_map(|r| match &r.outcome {
        Outcome::Timed { max_rss, .. } if r.name == "outport oci tar" => Some(*max_rss),
        _ => None,
    });
    let put_floor = find(&rows, PUT_FLOOR);
    Ok(Group {
        image: image.name.clone(),
        title: image.title.clone(),
        bytes: image.bytes,
        limit,
        rows,
        three_vs_slowest,
        three_vs_floor,
        outport_peak_rss,
        put_floor,
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn openssl(image: &Image) -> Cmd {
    let mut args: Vec<OsString> = vec!["dgst".into(), "-sha256".into()];
    args.extend(image.blobs.iter().map(|b| b.clone().into_os_string()));
    Cmd::new("openssl", args)
}

/// Three `cp -r` of the image and `openssl dgst` of its blobs, at once.
fn three_floor(image: &Image, dests: &[PathBuf]) -> Cmd {
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        r#"src=$1; shift; for d in "$1" "$2" "$3"; do cp -r "$src" "$d" & done; shift 3; openssl dgst -sha256 "$@" >/dev/null; wait"#.into(),
        "bash".into(),
        image.dir.clone().into(),
    ];
    args.extend(dests.iter().map(|d| d.clone().into_os_string()));
    args.extend(image.blobs.iter().map(|b| b.clone().into_os_string()));
    Cmd::new("bash", args)
}

fn full_cases(env: &Env, image: &Image) -> Vec<Case> {
    let mut cases = floor_cases(env, image);
    cases.extend(outport_cases(env, image));
    // With many small blobs the script is bound by starting two `curl`
    // processes per blob, and is no floor.
    if image.blobs.len() <= PUT_FLOOR_MAX_BLOBS {
        cases.push(put_floor(env, image));
    }
    cases.push(outport_case(
        env,
        image,
        THREE_AT_ONCE,
        &[
            ("type=oci", "three-oci.tar"),
            ("type=oci,tar=false", "three-oci-dir"),
            ("type=docker", "three-docker.tar"),
        ],
    ));
    cases.extend(skopeo_cases(env, image));
    cases
}

/// The floors every export is measured against: `cp -r`, `openssl dgst`,
/// and three copies at once.
fn floor_cases(env: &Env, image: &Image) -> Vec<Case> {
    let work = &env.work;
    let cp_dest = work.join("cp");
    let floor_dests: Vec<PathBuf> = (1..=3).map(|i| work.join(format!("cp{i}"))).collect();
    vec![
        Case {
            name: "cp",
            cmd: Cmd::new(
                "cp",
                [
                    OsString::from("-r"),
                    image.dir.clone().into(),
                    cp_dest.clone().into(),
                ],
            ),
            outputs: vec![cp_dest],
            registry: false,
        },
        Case {
            name: "openssl dgst -sha256",
            cmd: openssl(image),
            outputs: Vec::new(),
            registry: false,
        },
        Case {
            name: THREE_FLOOR,
            cmd: three_floor(image, &floor_dests),
            outputs: floor_dests.clone(),
            registry: false,
        },
    ]
}

/// outport to one output of each built-in exporter, then the registry
/// push.
fn outport_cases(env: &Env, image: &Image) -> Vec<Case> {
    let registry = &env.registry.addr;
    vec![
        outport_case(env, image, "outport oci tar", &[("type=oci", "oci.tar")]),
        outport_case(
            env,
            image,
            "outport oci dir",
            &[("type=oci,tar=false", "oci-dir")],
        ),
        outport_case(
            env,
            image,
            "outport docker",
            &[("type=docker", "docker.tar")],
        ),
        outport_case(env, image, "outport local", &[("type=local", "rootfs")]),
        outport_case(
            env,
            image,
            "outport tar (rootfs)",
            &[("type=tar", "rootfs.tar")],
        ),
        Case {
            name: "outport registry push",
            cmd: outport_cmd(
                env,
                image,
                &[format!(
                    "type=registry,name={registry}/outport:1,registry.insecure=true"
                )],
            ),
            outputs: Vec::new(),
            registry: true,
        },
    ]
}

/// The floor of a registry push: the blobs `PUT` by a script.
fn put_floor(env: &Env, image: &Image) -> Case {
    Case {
        name: PUT_FLOOR,
        cmd: Cmd::new(
            "bash",
            [
                OsString::from("-c"),
                PUT_SCRIPT.into(),
                "bash".into(),
                (&env.registry.addr).into(),
                image.dir.join("blobs/sha256").into(),
            ],
        ),
        outputs: Vec::new(),
        registry: true,
    }
}

/// skopeo copying the image: to an OCI archive, a docker archive and a
/// registry.
fn skopeo_cases(env: &Env, image: &Image) -> Vec<Case> {
    let work = &env.work;
    let registry = &env.registry.addr;
    let src = format!("oci:{}", image.dir.display());
    vec![
        skopeo_case(
            env,
            "skopeo oci-archive",
            &[
                "--all",
                &src,
                &format!("oci-archive:{}", work.join("skopeo-oci.tar").display()),
            ],
            "skopeo-oci.tar",
        ),
        // docker-archive holds one image: skopeo picks the host's platform.
        skopeo_case(
            env,
            "skopeo docker-archive",
            &[
                &src,
                &format!(
                    "docker-archive:{}",
                    work.join("skopeo-docker.tar").display()
                ),
            ],
            "skopeo-docker.tar",
        ),
        Case {
            name: "skopeo docker://",
            cmd: Cmd::new(
                "skopeo",
                [
                    "copy",
                    "--quiet",
                    "--all",
                    "--dest-tls-verify=false",
                    &src,
                    &format!("docker://{registry}/skopeo:1"),
                ],
            ),
            outputs: Vec::new(),
            registry: true,
        },
    ]
}

fn skopeo_case(env: &Env, name: &'static str, args: &[&str], output: &str) -> Case {
    let mut argv = vec!["copy", "--quiet"];
    argv.extend_from_slice(args);
    Case {
        name,
        cmd: Cmd::new("skopeo", argv),
        outputs: vec![env.work.join(output)],
        registry: false,
    }
}

/// outport exporting `image` to each `(spec, output name)` at once.
fn outport_case(env: &Env, image: &Image, name: &'static str, outputs: &[(&str, &str)]) -> Case {
    let specs: Vec<String> = outputs
        .iter()
        .map(|(spec, out)| format!("{spec},dest={}", env.work.join(out).display()))
        .collect();
    Case {
        name,
        cmd: outport_cmd(env, image, &specs),
        outputs: outputs.iter().map(|(_, out)| env.work.join(out)).collect(),
        registry: false,
    }
}

fn outport_cmd(env: &Env, image: &Image, specs: &[String]) -> Cmd {
    let mut args: Vec<OsString> = vec![
        "export".into(),
        image.dir.clone().into(),
        "--progress".into(),
        "quiet".into(),
    ];
    for spec in specs {
        args.push("--output".into());
        args.push(spec.into());
    }
    Cmd::new(&env.outport, args).env("OUTPORT_CACHE_DIR", &env.cache)
}

/// Times `case` `env.runs` times, each in a fresh filesystem (and with a
/// fresh registry for a push).
fn time_case(env: &Env, case: &Case) -> Result<Outcome> {
    if case.registry && !Registry::available() {
        return Ok(Outcome::NotAvailable(
            "n/a (docker-registry not installed)".into(),
        ));
    }
    let mut secs = Vec::new();
    let mut max_rss = 0;
    for _ in 0..env.runs {
        let _fs = env.fresh.before_run(&case.outputs)?;
        let _registry = case.registry.then(|| env.registry.start()).transpose()?;
        let run = runner::run(&env.fresh.cmd(&case.cmd))?;
        if !run.success {
            let first = run.stderr.lines().next().unwrap_or("no message").to_owned();
            fresh_fs::clean(&case.outputs)?;
            if first.contains("unknown exporter type \"registry\"") {
                return Ok(Outcome::NotAvailable("n/a (no registry exporter)".into()));
            }
            return Ok(Outcome::NotAvailable(format!("failed: {first}")));
        }
        secs.push(run.elapsed.as_secs_f64());
        max_rss = max_rss.max(run.max_rss);
    }
    fresh_fs::clean(&case.outputs)?;
    Ok(Outcome::Timed { secs, max_rss })
}
