//! Crash safety (issue 16, item 8): a run killed with SIGKILL mid-export
//! leaves no output at the destinations it had not finished, only its
//! staging directories, which the next run staging in the same directory
//! removes (and nothing else: not a live run's locked staging directory,
//! not files or symlinks merely named like one, not the sentinel tree); a
//! full filesystem (a small tmpfs, when the tests run as root) fails the
//! instance in one line naming the destination and leaves that filesystem
//! empty, while a sibling output elsewhere succeeds; two runs exporting to
//! the same destinations at once both succeed and leave one whole output
//! each, never a mix or a leftover (`concurrent.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;

mod background;
mod concurrent;
pub(crate) mod tmpfs;
mod trees;

use background::*;
pub(crate) use background::{Running, wait_until};
use tmpfs::*;
use trees::*;

/// What every staging directory's name holds (`.NAME` before it).
const STAGING_MARK: &str = ".outport-staging-";

/// How old an unlocked staging directory must be before a run takes it for
/// a dead run's (the runtime's `STALE_AFTER`), plus a margin for clocks
/// and timestamp granularity.
const STALE: Duration = Duration::from_millis(5_600);

/// Longest wait for a started run to reach a state.
const WAIT: Duration = Duration::from_secs(60);

/// Whether `name` is named like a staging directory.
fn staging_like(name: &str) -> bool {
    name.starts_with('.') && name.contains(STAGING_MARK)
}

/// The staging directories for destination `name` in `dir`.
fn stagings(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}{STAGING_MARK}");
    dir_names(dir)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .map(|n| dir.join(n))
        .collect()
}

/// `outport export INPUT --output SPEC...`.
fn export_args(input: &Path, outputs: &[String]) -> Vec<String> {
    let mut args = vec!["export".to_string(), path_str(input).to_string()];
    for spec in outputs {
        args.push("--output".into());
        args.push(spec.clone());
    }
    args
}

/// An instance of the misbehave component that writes `partial output`
/// (into the granted file, or `out.txt` for `output=directory`), then
/// waits an hour in a host call.
fn sleeper(id: &str, dest: &Path, output: &str) -> String {
    format!(
        "type=wasm,component={},action=sleep,output={output},dest={},id={id}",
        outport_test_programs::MISBEHAVE,
        path_str(dest)
    )
}

/// Runs `outport ARGS` to the end with the compile cache in `cache`.
fn outport_in(args: &[String], cache: &Path) -> Run {
    outport_with_cache(args, cache, &[])
}

// ---------------------------------------------------------------------------
// SIGKILL mid-export
// ---------------------------------------------------------------------------

/// Ages `path` (a file or directory) by an hour, so it would pass for a
/// dead run's leftover if it were taken for a staging directory.
fn age(path: &Path) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(hour_ago)
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", path.display()));
}

/// Makes `out/sentinel/` (a file, a directory) and, beside it, things
/// named like staging directories that are not ones a run may remove: a
/// regular file, a directory without the leading dot, a symlink to a
/// directory. All aged an hour. Returns their names.
fn sentinels(out: &Path) -> Vec<String> {
    let sentinel = mkdir(out, "sentinel");
    fs::write(sentinel.join("keep.txt"), b"do not touch").unwrap();
    let inner = mkdir(&sentinel, "inner");
    fs::write(inner.join("also.txt"), b"do not touch either").unwrap();
    age(&inner);
    age(&sentinel);

    let file = format!(".file{STAGING_MARK}0000aaaa");
    fs::write(out.join(&file), b"a file, not a staging directory").unwrap();
    age(&out.join(&file));
    let undotted = format!("undotted{STAGING_MARK}0000bbbb");
    let dir = mkdir(out, &undotted);
    fs::write(dir.join("mine.txt"), b"a user's directory").unwrap();
    age(&dir);
    let link = format!(".link{STAGING_MARK}0000cccc");
    std::os::unix::fs::symlink("sentinel/inner", out.join(&link)).unwrap();
    vec!["sentinel".to_string(), file, undotted, link]
}

/// What the built-in outputs are when whole: the `local` output's tree and
/// the `oci` tarball (this also fills the compile cache, so the runs after
/// start fast).
fn whole_outputs(
    tmp: &Path,
    input: &Path,
    cache: &Path,
) -> (std::collections::BTreeMap<String, Node>, LayoutFiles) {
    let reference = mkdir(tmp, "reference");
    outport_in(
        &export_args(
            input,
            &[
                format!("type=local,dest={}", path_str(&reference.join("rootfs"))),
                format!("type=oci,dest={}", path_str(&reference.join("x.tar"))),
            ],
        ),
        cache,
    )
    .assert_success();
    (
        tree(&reference.join("rootfs")),
        valid_oci_tar(&reference.join("x.tar")),
    )
}

/// Starts the run to kill: two instances that never finish (a file output
/// and a directory output), and two built-in ones that may finish first.
fn start_doomed(input: &Path, out: &Path, cache: &Path, stderr: PathBuf) -> Running {
    Running::start(
        export_args(
            input,
            &[
                sleeper("bad", &out.join("bad.txt"), "file"),
                sleeper("bad-dir", &out.join("bad-dir"), "directory"),
                format!(
                    "type=local,dest={},id=rootfs",
                    path_str(&out.join("rootfs"))
                ),
                format!("type=oci,dest={},id=tarball", path_str(&out.join("x.tar"))),
            ],
        ),
        cache,
        stderr,
    )
}

/// Checks what the killed run (`doomed`) left in `out`: nothing at the
/// unfinished destinations; a finished output is whole (as `whole`); the
/// rest is staging directories (and the `kept` entries that were there
/// before). Returns the killed run's staging directories and the finished
/// outputs' names.
fn after_the_kill(
    out: &Path,
    kept: &[String],
    whole: &(std::collections::BTreeMap<String, Node>, LayoutFiles),
    live_staging: &[PathBuf],
    doomed: &Running,
) -> (Vec<PathBuf>, Vec<String>) {
    let (reference_rootfs, reference_tar) = whole;
    let mut leftovers = Vec::new();
    let mut finished = Vec::new();
    for name in dir_names(out) {
        let path = out.join(&name);
        if kept.contains(&name) {
            continue;
        } else if name == "rootfs" {
            assert_same_rootfs(&path, reference_rootfs);
            finished.push(name);
        } else if name == "x.tar" {
            assert_eq!(valid_oci_tar(&path).files, reference_tar.files);
            finished.push(name);
        } else if staging_like(&name) {
            assert!(path.is_dir(), "{} is not a directory", path.display());
            if !live_staging.contains(&path) {
                leftovers.push(path);
            }
        } else {
            panic!(
                "after SIGKILL, {} is in the output directory (it holds {:?})\n{}",
                path.display(),
                dir_names(out),
                doomed.describe()
            );
        }
    }
    for name in ["bad.txt", "bad-dir"] {
        assert_eq!(stagings(out, name).len(), 1, "{:?}", dir_names(out));
    }
    assert_eq!(live_staging.len(), 1, "{:?}", dir_names(out));
    (leftovers, finished)
}

/// What `out` should hold once the next run removed the killed run's
/// leftovers: the `kept` entries, the `finished` outputs, the next run's
/// `good.tar` and the live run's staging directory.
fn expected_after_next_run(
    kept: &[String],
    finished: &[String],
    live_staging: &[PathBuf],
) -> Vec<String> {
    let mut want: Vec<String> = kept.to_vec();
    want.extend(finished.iter().cloned());
    want.push("good.tar".into());
    want.extend(live_staging.iter().map(|p| {
        p.file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned()
    }));
    want.sort();
    want
}

#[test]
fn a_killed_run_leaves_no_output_and_the_next_run_removes_only_its_leftovers() {
    let started = Instant::now();
    let tmp = tempdir();
    let cache = mkdir(tmp.path(), "cache");
    let input = sample_image();
    let whole = whole_outputs(tmp.path(), &input, &cache);

    let out = mkdir(tmp.path(), "out");
    let kept = sentinels(&out);
    let kept_before: Vec<_> = kept.iter().map(|name| tree_or_file(&out, name)).collect();

    // A live run, waiting in its instance with its staging directory locked.
    let mut live = Running::start(
        export_args(&input, &[sleeper("live", &out.join("live.txt"), "file")]),
        &cache,
        tmp.path().join("live.stderr"),
    );
    let mut doomed = start_doomed(&input, &out, &cache, tmp.path().join("doomed.stderr"));
    wait_until(
        "both runs' waiting instances to stage their partial output",
        &mut [&mut live, &mut doomed],
        || {
            staged_partial(&out, "live.txt", "live.txt")
                && staged_partial(&out, "bad.txt", "bad.txt")
                && staged_partial(&out, "bad-dir", "out.txt")
        },
    );
    doomed.kill();
    let live_staging = stagings(&out, "live.txt");
    let (leftovers, finished) = after_the_kill(&out, &kept, &whole, &live_staging, &doomed);

    // Once the leftovers are old enough to be a dead run's, the next run
    // staging in the same directory removes them, and nothing else.
    let mut all_staging = leftovers.clone();
    all_staging.extend(live_staging.iter().cloned());
    wait_until_stale(&all_staging);
    live.assert_alive();
    let good = out.join("good.tar");
    let run = outport_in(
        &export_args(
            &input,
            &[format!("type=oci,dest={},id=good", path_str(&good))],
        ),
        &cache,
    );
    run.assert_success();
    assert_eq!(valid_oci_tar(&good).files, whole.1.files);
    assert_eq!(
        dir_names(&out),
        expected_after_next_run(&kept, &finished, &live_staging),
        "the next run should remove the killed run's staging directories {leftovers:?}, \
         and nothing else\n{}",
        run.describe()
    );
    let kept_after: Vec<_> = kept.iter().map(|name| tree_or_file(&out, name)).collect();
    assert_eq!(
        kept_after, kept_before,
        "something beside the outputs changed"
    );
    // The live run's staging directory, locked, is untouched.
    live.assert_alive();
    assert!(staged_partial(&out, "live.txt", "live.txt"));
    live.kill();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// A full filesystem
// ---------------------------------------------------------------------------

const PAGE: u64 = 4096;

/// Exports the sample with `type=EXPORTER` to `dest_in` on a tmpfs, beside a
/// sibling `oci` output on the ordinary filesystem: first on a roomy tmpfs
/// to measure it, then on one of half that size, where it must fail for
/// lack of space in one line naming the destination and leave the tmpfs
/// empty while the sibling succeeds; then on the roomy size again, where
/// it succeeds with what it wrote the first time. Returns false (skipped)
/// when this process may not mount a tmpfs.
fn fails_on_a_full_tmpfs(exporter: &str, dest_in: &str) -> bool {
    let case = format!("type={exporter}");
    let output = |dest: &Path| format!("type={exporter},dest={}", path_str(dest));
    let tmp = tempdir();
    let cache = mkdir(tmp.path(), "cache");
    let input = sample_image();

    let (used, measured) = {
        let Some(roomy) = Tmpfs::mount(&tmp.path().join("roomy"), 64 << 20) else {
            return false;
        };
        let dest = roomy.path.join(dest_in);
        outport_in(&export_args(&input, &[output(&dest)]), &cache).assert_success();
        (roomy.used(), tree_or_file(&roomy.path, dest_in))
    };
    let pages = used / PAGE / 2;
    assert!(
        pages >= 1,
        "{case}: the sample's output takes {used} bytes on a tmpfs, too little to halve"
    );

    let full = Tmpfs::mount(&tmp.path().join("full"), pages * PAGE).expect("mount a tmpfs again");
    let dest = full.path.join(dest_in);
    let good = tmp.path().join("good.tar");
    let mut args = export_args(
        &input,
        &[
            format!("{},id=full", output(&dest)),
            format!("type=oci,dest={},id=good", path_str(&good)),
        ],
    );
    args.extend(["--progress".into(), "plain".into()]);
    let run = outport_in(&args, &cache);
    run.assert_code(1);
    let error = run.error_text();
    assert_eq!(
        error.lines().count(),
        1,
        "{case}: the error should be one line\n{}",
        run.describe()
    );
    for part in [
        "instance \"full\"".to_string(),
        format!("dest {}: no space left", path_str(&dest)),
    ] {
        assert!(
            error.contains(&part),
            "{case}: the error should say {part:?}\n{}",
            run.describe()
        );
    }
    assert!(
        !error.contains("\"good\""),
        "{case}: only the full instance fails\n{}",
        run.describe()
    );
    assert_eq!(
        dir_names(&full.path),
        Vec::<String>::new(),
        "{case}: the full tmpfs should be left empty\n{}",
        run.describe()
    );
    assert_eq!(full.used(), 0, "{case}: the tmpfs still holds data");
    valid_oci_tar(&good);

    // The same run on the roomy size again succeeds with the same output:
    // the failure was the space, nothing else.
    drop(full);
    let roomy = Tmpfs::mount(&tmp.path().join("roomy"), 64 << 20).expect("mount a tmpfs again");
    let dest = roomy.path.join(dest_in);
    outport_in(&export_args(&input, &[output(&dest)]), &cache).assert_success();
    assert_eq!(tree_or_file(&roomy.path, dest_in), measured);
    true
}

#[test]
fn a_full_filesystem_fails_the_instance_in_one_line_and_leaves_it_empty() {
    let started = Instant::now();
    // The local rootfs in a directory outport creates (and must remove).
    for (exporter, dest) in [("oci", "out.tar"), ("local", "new/rootfs")] {
        if !fails_on_a_full_tmpfs(exporter, dest) {
            println!("skipped: mounting a tmpfs needs root (and CAP_SYS_ADMIN)");
            return;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
