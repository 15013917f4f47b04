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
use crate::runner::{self, Cmd};
use crate::timed::{self, RealRow, Setup, Target};

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
        rows.push(timed::time(env, name, &cmd, &outputs, Setup::default())?);
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

/// Each target of the group: its name, the ratio, whether it is met
/// (only the gzip image's can be).
fn targets(group: &RealGroup) -> Vec<Target> {
    let mut out: Vec<Target> = TARGETS
        .iter()
        .map(|t| timed::cost(&group.rows, t))
        .map(|(name, ratio, met)| (name, ratio, met && group.packing == Packing::Gzip))
        .collect();
    let speedup = timed::speedup(&group.rows, &SPEEDUP);
    if speedup.1.is_some() {
        out.push(speedup);
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
    timed::print_rows(&group.rows, false);
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
    json!({
        "image": format!("real-{}", group.packing.name()),
        "compressed_bytes": group.compressed,
        "uncompressed_bytes": group.uncompressed,
        "rows": timed::rows_json(&group.rows, false),
        "targets": timed::targets_json(targets(group)),
    })
}
