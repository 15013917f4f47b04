//! Two runs exporting to the same destinations at once both succeed and
//! leave one whole output each, never a mix or a leftover.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::trees::*;
use super::{export_args, outport_in};
use crate::common::*;

/// Rounds of two runs at once (the first places new outputs, the others
/// replace existing ones).
const ROUNDS: usize = 16;

/// The outputs both runs write into `dir`: an `oci` tarball, an `oci`
/// layout and a `local` root filesystem.
fn outputs(dir: &Path) -> Vec<String> {
    vec![
        format!("type=oci,dest={},id=tarball", path_str(&dir.join("x.tar"))),
        format!(
            "type=oci,tar=false,dest={},id=layout,name={SAMPLE_NAME}",
            path_str(&dir.join("layout"))
        ),
        format!(
            "type=local,dest={},id=rootfs",
            path_str(&dir.join("rootfs"))
        ),
    ]
}

/// Each output when whole, from one run alone, checked by tools nobody
/// here wrote (this also fills the compile cache).
struct Whole {
    tar: LayoutFiles,
    layout: LayoutFiles,
    rootfs: std::collections::BTreeMap<String, Node>,
}

impl Whole {
    fn export(tmp: &Path, input: &Path, cache: &Path) -> Whole {
        let reference = mkdir(tmp, "reference");
        outport_in(&export_args(input, &outputs(&reference)), cache).assert_success();
        let whole = Whole {
            tar: valid_oci_tar(&reference.join("x.tar")),
            layout: valid_oci_dir(&reference.join("layout")),
            rootfs: tree(&reference.join("rootfs")),
        };
        let bundle = tmp.join("bundle");
        let image = format!("{}:{SAMPLE_TAG}", path_str(&reference.join("layout")));
        umoci(&["unpack", "--rootless", "--image", &image, path_str(&bundle)]);
        let unpacked = tree(&bundle.join("rootfs"));
        for (path, node) in &whole.rootfs {
            if let Node::File(_, bytes) = node {
                assert!(
                    matches!(&unpacked.get(path), Some(Node::File(_, b)) if b == bytes),
                    "umoci's unpack of the layout has no {path} as the local output has it"
                );
            }
        }
        whole
    }

    /// Checks that round `round`'s `runs` both succeeded and left one whole
    /// output each in `out`.
    fn assert_one_each(&self, round: usize, out: &Path, runs: &[Run]) {
        for run in runs {
            assert_eq!(
                run.code,
                Some(0),
                "round {round}: both runs should succeed\n{}",
                run.describe()
            );
        }
        assert_eq!(
            dir_names(out),
            ["layout", "rootfs", "x.tar"],
            "round {round}: one output each, no staging leftover\n{}\n{}",
            runs[0].describe(),
            runs[1].describe()
        );
        assert_eq!(
            valid_oci_tar(&out.join("x.tar")).files,
            self.tar.files,
            "round {round}: x.tar"
        );
        assert_eq!(
            valid_oci_dir(&out.join("layout")).files,
            self.layout.files,
            "round {round}: layout"
        );
        assert_same_rootfs(&out.join("rootfs"), &self.rootfs);
    }
}

/// Two runs of `outport ARGS` started at the same moment.
fn two_at_once(args: &[String], cache: &Path) -> Vec<Run> {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    outport_in(args, cache)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a run's thread"))
            .collect()
    })
}

#[test]
fn two_runs_to_the_same_destinations_at_once_leave_one_whole_output_each() {
    let started = Instant::now();
    let tmp = tempdir();
    let cache = mkdir(tmp.path(), "cache");
    let input = single_platform_sample(tmp.path(), "input", "amd64", SAMPLE_TAG);
    let whole = Whole::export(tmp.path(), &input, &cache);

    let out = mkdir(tmp.path(), "out");
    let args = export_args(&input, &outputs(&out));
    for round in 0..ROUNDS {
        let runs = two_at_once(&args, &cache);
        whole.assert_one_each(round, &out, &runs);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
