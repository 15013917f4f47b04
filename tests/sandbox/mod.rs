//! The sandbox policy and hostile components: `--policy FILE` sets limits
//! per component, pins components by digest and restricts destinations;
//! a component reaching for files outside its destination or symlinking
//! out of it gets an error; one exhausting fuel, handles, a table (the
//! table bomb, written in the WebAssembly text format), the stack, the
//! response or transfer limits, or passing malformed strings, digests or
//! media types fails alone with the limit named, the host's memory
//! bounded; one importing `wasi:sockets`, declaring a huge table or
//! compiling past its limits is refused before anything runs. Nothing
//! beside the destination changes, a sibling `oci` instance finishes
//! correctly, and no component sees the environment, arguments or stdin.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

mod escapes;
mod guest_text;
mod host_memory;
mod host_work;
mod imports;
mod limits;
mod policy_file;
mod policy_keys;

/// A work directory: `out/` for destinations, `sentinel/` beside them
/// (whose tree must never change) and the policy file.
struct Work {
    tmp: tempfile::TempDir,
    out: PathBuf,
    sentinel: PathBuf,
}

impl Work {
    fn new() -> Work {
        let tmp = tempdir();
        let out = mkdir(tmp.path(), "out");
        let sentinel = mkdir(&out, "sentinel");
        fs::write(sentinel.join("keep.txt"), b"do not touch").unwrap();
        mkdir(&sentinel, "inner");
        Work { tmp, out, sentinel }
    }

    /// Writes the policy file and returns its path.
    fn policy(&self, text: &str) -> PathBuf {
        let path = self.tmp.path().join("policy.toml");
        fs::write(&path, text).unwrap();
        path
    }

    /// Every path under `sentinel/` with its contents.
    fn sentinel_tree(&self) -> BTreeMap<String, Vec<u8>> {
        let mut tree = BTreeMap::new();
        let mut stack = vec![self.sentinel.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path
                    .strip_prefix(&self.sentinel)
                    .unwrap()
                    .display()
                    .to_string();
                if path.is_dir() {
                    stack.push(path);
                    tree.insert(name, Vec::new());
                } else {
                    tree.insert(name, fs::read(&path).unwrap());
                }
            }
        }
        tree
    }

    /// Runs the misbehave component with `action` (id `bad`, dest
    /// `out/bad.txt`) beside a good `oci` output (id `good`), with `extra`
    /// arguments; checks the sibling and that nothing but `expected` and
    /// the sentinel is in `out/`.
    fn run(&self, action: &str, extra: &[&str], expected: &[&str]) -> Run {
        self.run_by(action, extra, expected, outport)
    }

    /// [`Work::run`], running `outport` with `runner`.
    fn run_by(
        &self,
        action: &str,
        extra: &[&str],
        expected: &[&str],
        runner: impl FnOnce(Vec<String>) -> Run,
    ) -> Run {
        let bad = format!(
            "type=wasm,component={},action={action},dest={},id=bad",
            outport_test_programs::MISBEHAVE,
            path_str(&self.out.join("bad.txt"))
        );
        self.run_output(&bad, extra, expected, runner)
    }

    /// [`Work::run_by`] with `bad` as the bad instance's `--output`.
    fn run_output(
        &self,
        bad: &str,
        extra: &[&str],
        expected: &[&str],
        runner: impl FnOnce(Vec<String>) -> Run,
    ) -> Run {
        let before = self.sentinel_tree();
        let good = self.out.join("good.tar");
        let mut args: Vec<String> = vec![
            "export".into(),
            path_str(&sample_image()).into(),
            "--output".into(),
            bad.into(),
            "--output".into(),
            format!("type=oci,dest={},id=good", path_str(&good)),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let run = runner(args);
        LayoutFiles::from_tar(&good).verify();
        let mut names = dir_names(&self.out);
        names.sort();
        let mut want: Vec<String> = ["good.tar", "sentinel"]
            .iter()
            .chain(expected)
            .map(|s| s.to_string())
            .collect();
        want.sort();
        assert_eq!(names, want, "{}", run.describe());
        assert_eq!(self.sentinel_tree(), before, "the sentinel tree changed");
        assert!(!self.tmp.path().join("x").exists());
        run
    }

    /// Runs `bad` (an `--output`) beside a good `oci` one, with `extra`
    /// arguments, checks the run is refused (exit 2) before anything runs,
    /// leaving nothing but the sentinel in `out/`, and returns it for its
    /// error.
    fn refused(&self, bad: &str, extra: &[&str]) -> Run {
        let good = format!("type=oci,dest={}", path_str(&self.out.join("good.tar")));
        let image = sample_image();
        let mut args = vec![
            "export",
            path_str(&image),
            "--output",
            bad,
            "--output",
            &good,
        ];
        args.extend(extra);
        let run = outport(args);
        run.assert_code(2);
        assert_eq!(dir_names(&self.out), vec!["sentinel".to_string()]);
        run
    }

    /// [`Work::refused`] for the misbehave component (`action=ok`).
    fn refused_with(&self, extra: &[&str]) -> Run {
        let bad = format!(
            "type=wasm,component={},action=ok,dest={},id=bad",
            outport_test_programs::MISBEHAVE,
            path_str(&self.out.join("bad.txt"))
        );
        self.refused(&bad, extra)
    }

    /// Runs `action` (which must succeed) and returns the bad instance's
    /// response from the metadata file.
    fn response(&self, action: &str) -> serde_json::Value {
        let meta = self.tmp.path().join("meta.json");
        let run = self.run(action, &["--metadata-file", path_str(&meta)], &["bad.txt"]);
        run.assert_success();
        exporter_entry(&read_json(&meta), "bad")["response"].clone()
    }

    /// Like [`Work::run`] with a policy: the bad instance fails with
    /// `message` and leaves nothing.
    fn fails(&self, action: &str, policy: &str, message: &str) {
        let policy = self.policy(policy);
        let run = self.run(action, &["--policy", path_str(&policy)], &[]);
        run.assert_code(1);
        run.assert_error(&["instance \"bad\""], &[message]);
    }
}

/// Runs `outport policy ARGS...` (which takes no `--cache-dir`).
fn policy_cmd(args: &[&str]) -> Run {
    let args = std::iter::once("policy")
        .chain(args.iter().copied())
        .map(Into::into)
        .collect();
    run_outport(args, |_| {})
}

/// The misbehave component's policy entry with `limits` (TOML lines).
fn misbehave_limits(limits: &str) -> String {
    format!("[components.outport_test_misbehave.limits]\n{limits}\n")
}

/// Peak RSS of exporting the sample image to one `oci` output, the
/// baseline a hostile run's peak is measured against.
fn baseline_rss(work: &Work) -> u64 {
    let base = work.tmp.path().join("base.tar");
    let (run, rss) = outport_peak_rss(
        ["export", path_str(&sample_image()), "--output"]
            .iter()
            .map(Into::into)
            .chain([format!("type=oci,dest={}", path_str(&base)).into()])
            .collect(),
    );
    run.assert_success();
    rss
}

/// Runs `action` with the misbehave component's `limits` (TOML lines)
/// plus a guest memory limit of `memory` bytes; checks it fails with
/// `message` and that the process's peak RSS stays under `base_rss` plus
/// the guest's memory plus 32 MiB for the host.
fn fails_with_memory_bounded(
    work: &Work,
    action: &str,
    limits: &str,
    memory: u64,
    base_rss: u64,
    message: &str,
) {
    let policy = work.policy(&misbehave_limits(&format!(
        "memory-bytes = {memory}\n{limits}"
    )));
    let mut peak = 0;
    let run = work.run_by(action, &["--policy", path_str(&policy)], &[], |args| {
        let (run, rss) = outport_peak_rss(args.into_iter().map(Into::into).collect());
        peak = rss;
        run
    });
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &[message]);
    // The guest's memory is part of the process; beyond it the host may
    // hold only a bounded amount.
    let bound = base_rss + memory + (32 << 20);
    assert!(
        peak < bound,
        "{action}: peak RSS {peak} bytes, bound {bound} (baseline {base_rss})"
    );
}
