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

mod guest_text;
mod host_work;
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

/// Runs `outport policy ARGS...`, checks it succeeded and that its output
/// has every one of `lines`.
fn assert_policy_shows(args: &[&str], lines: &[&str]) {
    let run = policy_cmd(args);
    run.assert_success();
    let text = run.stdout_text();
    for line in lines {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[test]
fn policy_show_prints_the_safe_defaults() {
    assert_policy_shows(
        &["show"],
        &[
            "allow-unpinned = true",
            "memory-bytes = 536870912",
            "timeout-seconds = 3600",
            "without an entry none, except the registry exporter",
            "compile-timeout-seconds = 60",
            "compile-memory-bytes = 4294967296",
        ],
    );
}

#[test]
fn policy_show_merges_a_policy_file_over_the_defaults() {
    let work = Work::new();
    let policy = work.policy(
        "allow-unpinned = false\n[limits]\noutput-bytes = 1024\n\
         [components.outport_test_misbehave]\ndestination = \"file\"\nnetwork-hosts = [\"registry.example.com\"]\n",
    );
    assert_policy_shows(
        &["show", "--policy", path_str(&policy)],
        &[
            "allow-unpinned = false",
            "output-bytes = 1024",
            "memory-bytes = 536870912",
            "destination = \"file\"",
            "registry.example.com",
        ],
    );
}

#[test]
fn an_unknown_policy_key_is_a_usage_error_naming_file_and_key() {
    let work = Work::new();
    let policy = work.policy("[limits]\nmemory = 1\n");
    for run in [
        policy_cmd(&["show", "--policy", path_str(&policy)]),
        outport([
            "export",
            path_str(&sample_image()),
            "--output",
            "type=oci,dest=never.tar",
            "--policy",
            path_str(&policy),
        ]),
    ] {
        run.assert_code(2);
        run.assert_error(&["policy.toml"], &["unknown field `memory`"]);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    }
}

#[test]
fn an_example_policy_matches_the_schema() {
    let example = "allow-unpinned = false\n\
        [limits]\nmemory-bytes = 67108864\ntimeout-seconds = 60\noutput-bytes = 1073741824\n\
        fuel = 10000000000\ncompile-timeout-seconds = 30\ncompile-memory-bytes = 2147483648\n\
        [components.oci]\ndestination = \"file\"\n\
        [components.\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]\n\
        network-hosts = [\"*.example.com\"]\n\
        [components.\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\".limits]\n\
        memory-bytes = 134217728\n";
    let work = Work::new();
    let policy = work.policy(example);
    policy_cmd(&["show", "--policy", path_str(&policy)]).assert_success();
    let schema = repo_root().join("schemas/policy.schema.json");
    let script = "import json, sys, tomllib, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        v = jsonschema.Draft202012Validator(schema)\n\
        good = tomllib.load(open(sys.argv[2], 'rb'))\n\
        errors = list(v.iter_errors(good))\n\
        [print(f'{list(e.absolute_path)}: {e.message}') for e in errors]\n\
        bad = dict(good, limits={'memroy-bytes': 1})\n\
        sys.exit(1 if errors or v.is_valid(bad) else 0)\n";
    let out = tool(
        "python3",
        &["-c", script, path_str(&schema), path_str(&policy)],
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unpinned_component_is_refused_and_a_pinned_one_runs() {
    let work = Work::new();
    let digest = sha256_digest(&fs::read(outport_test_programs::MISBEHAVE).unwrap());
    let strict = work.policy("allow-unpinned = false\n");
    let run = outport([
        "export",
        path_str(&sample_image()),
        "--output",
        &format!(
            "type=wasm,component={},dest={}",
            outport_test_programs::MISBEHAVE,
            path_str(&work.out.join("bad.txt"))
        ),
        "--policy",
        path_str(&strict),
    ]);
    run.assert_code(2);
    run.assert_error(&[&digest], &["not pinned"]);

    work.policy(&format!(
        "allow-unpinned = false\n[components.\"{digest}\"]\n"
    ));
    let run = work.run("ok", &["--policy", path_str(&strict)], &["bad.txt"]);
    run.assert_success();
    assert_eq!(
        fs::read(work.out.join("bad.txt")).unwrap(),
        b"complete output"
    );
}

#[test]
fn an_output_flood_stops_at_the_policy_output_limit() {
    Work::new().fails(
        "flood",
        "[components.outport_test_misbehave.limits]\noutput-bytes = 1048576\n",
        "output limit of 1048576 bytes exceeded",
    );
}

#[test]
fn the_policy_memory_limit_applies() {
    Work::new().fails(
        "grow-memory",
        "[limits]\nmemory-bytes = 67108864\n",
        "memory limit of 67108864 bytes",
    );
}

#[test]
fn the_policy_time_limit_applies() {
    Work::new().fails(
        "loop",
        "[components.outport_test_misbehave.limits]\ntimeout-seconds = 1\n",
        "time limit of 1 s",
    );
}

#[test]
fn the_policy_destination_rule_applies() {
    Work::new().fails(
        "ok",
        "[components.outport_test_misbehave]\ndestination = \"directory\"\n",
        "only a directory destination",
    );
}

#[test]
fn escapes_from_the_destination_are_refused() {
    let response = &Work::new().response("escape");
    for what in ["etc-passwd", "absolute", "parent", "parent-at"] {
        let key = format!("test.refused.{what}");
        assert!(response[&key].is_string(), "{key} missing: {response:#}");
    }
    assert!(
        response["test.refused.symlink"].is_string()
            || (response["test.refused.through-symlink"].is_string()
                && response["test.refused.read-through-symlink"].is_string()),
        "{response:#}"
    );
    assert!(!Path::new("/x").exists());
}

/// The misbehave component's policy entry with `limits` (TOML lines).
fn misbehave_limits(limits: &str) -> String {
    format!("[components.outport_test_misbehave.limits]\n{limits}\n")
}

#[test]
fn the_policy_fuel_limit_applies() {
    Work::new().fails(
        "loop",
        &misbehave_limits("fuel = 1000000"),
        "fuel limit of 1000000 exceeded",
    );
}

#[test]
fn a_resource_bomb_stops_at_the_resources_limit() {
    Work::new().fails(
        "resource-bomb",
        &misbehave_limits("resources = 500"),
        "resources limit of 500 handles exceeded",
    );
}

#[test]
fn an_instances_limit_below_what_a_component_needs_fails_it_alone() {
    // A Rust component instantiates several core instances (its module
    // and wit-component's shims); with room for one it cannot start.
    Work::new().fails(
        "ok",
        &misbehave_limits("instances = 1"),
        "instantiation: instances limit of 1 exceeded",
    );
}

#[test]
fn a_policy_limit_beyond_what_the_engine_supports_is_refused_in_one_line() {
    let work = Work::new();
    for (text, message) in [
        (
            "[limits]\nmemory-bytes = 4294967296\n".to_string(),
            "limits.memory-bytes = 4294967296 is more than the engine supports (at most 1073741824)",
        ),
        (
            misbehave_limits("table-elements = 30000"),
            "components.\"outport_test_misbehave\".limits.table-elements = 30000 is more than the engine supports (at most 20000)",
        ),
        (
            misbehave_limits("instances = 64"),
            "limits.instances = 64 is more than the engine supports (at most 16)",
        ),
        (
            "[limits]\ntimeout-seconds = 18446744073709551615\n".to_string(),
            "limits.timeout-seconds = 18446744073709551615 is more than the longest limit supported",
        ),
    ] {
        let policy = work.policy(&text);
        for run in [
            policy_cmd(&["show", "--policy", path_str(&policy)]),
            work.refused_with(&["--policy", path_str(&policy)]),
        ] {
            run.assert_code(2);
            run.assert_error(&["policy.toml"], &[message]);
            assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        }
    }
    let run = work.refused_with(&["--timeout", "18446744073709551615"]);
    run.assert_error(
        &["--timeout", "18446744073709551615"],
        &["not in 0..=315360000"],
    );
}

#[test]
fn a_stack_overflow_is_named() {
    Work::new().fails("stack-overflow", "", "stack overflow");
}

#[test]
fn invalid_utf8_from_the_guest_fails_the_instance_cleanly() {
    Work::new().fails("invalid-utf8", "", "not valid UTF-8");
}

#[test]
fn an_oversized_response_is_refused_by_the_response_limit() {
    Work::new().fails(
        "response-key",
        "",
        "response limit of 1048576 bytes exceeded",
    );
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

#[test]
fn huge_responses_stop_at_the_transfer_limit_with_host_memory_bounded() {
    let work = Work::new();
    let base_rss = baseline_rss(&work);
    for action in ["response-entries", "response-values"] {
        fails_with_memory_bounded(&work, action, "", 128 << 20, base_rss, "transfer limit of");
    }
}

#[test]
fn memory_and_output_floods_keep_host_memory_bounded() {
    let work = Work::new();
    let base_rss = baseline_rss(&work);
    fails_with_memory_bounded(
        &work,
        "grow-memory",
        "",
        64 << 20,
        base_rss,
        "memory limit of 67108864 bytes exceeded",
    );
    fails_with_memory_bounded(
        &work,
        "flood",
        "output-bytes = 1048576",
        64 << 20,
        base_rss,
        "output limit of 1048576 bytes exceeded",
    );
}

#[test]
fn a_panic_fails_alone_and_leaves_the_sentinel() {
    Work::new().fails("panic", "", "deliberate panic");
}

#[test]
fn bogus_digests_and_media_types_get_clear_errors() {
    let response = &Work::new().response("bogus-calls");
    for (what, says) in [
        ("zz", "not a digest"),
        ("short", "not a digest"),
        ("upper", "not a digest"),
        ("empty-digest", "not a digest"),
        ("traversal", "not a digest"),
        ("empty-media-type", "not a media type"),
        ("garbage-media-type", "not a media type"),
        ("no-subtype", "not a media type"),
        ("range-past-end", "run past its end"),
        ("range-start-past-end", "run past its end"),
        ("range-overflow", "run past its end"),
    ] {
        let key = format!("test.refused.{what}");
        let error = response[&key].as_str().unwrap_or_default();
        assert!(error.contains(says), "{key}: {error:?} in {response:#}");
    }
}

#[test]
fn a_log_and_progress_flood_is_throttled() {
    let work = Work::new();
    let run = work.run("log-flood", &["--progress", "plain"], &["bad.txt"]);
    run.assert_success();
    let lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[bad]"))
        .count();
    assert!(lines < 5000, "{lines} lines from 200000 log calls");
    for what in ["log lines", "progress reports"] {
        let note = format!("rate limit of 100 {what} per second");
        assert!(run.stderr.contains(&note), "{note:?} missing");
    }
}

#[test]
fn a_component_importing_sockets_is_refused_before_it_runs() {
    let run = Work::new().refused(
        &format!(
            "type=wasm,component={},id=dial",
            outport_test_programs::DIALER
        ),
        &[],
    );
    run.assert_error(&["wasi:sockets/"], &["does not grant"]);
}

/// Runs the fetcher component (`GET http://127.0.0.1:9/` through
/// `wasi:http`) beside a good `oci` output, with `extra` arguments.
fn run_fetcher(work: &Work, extra: &[&str]) -> Run {
    let mut args = vec![
        "export".to_string(),
        path_str(&sample_image()).to_string(),
        "--output".to_string(),
        format!(
            "type=wasm,component={},id=fetch,target=127.0.0.1:9",
            outport_test_programs::FETCHER
        ),
        "--output".to_string(),
        format!(
            "type=oci,dest={},id=good",
            path_str(&work.out.join("good.tar"))
        ),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    outport(args)
}

#[test]
fn a_component_importing_http_without_network_hosts_is_refused_before_it_runs() {
    let work = Work::new();
    let run = run_fetcher(&work, &[]);
    run.assert_code(2);
    run.assert_error(&["wasi:http/"], &["does not grant"]);
    assert_eq!(dir_names(&work.out), vec!["sentinel".to_string()]);
}

#[test]
fn a_request_to_a_host_outside_network_hosts_is_denied_by_the_host() {
    let work = Work::new();
    let policy =
        work.policy("[components.outport_test_fetcher]\nnetwork-hosts = [\"127.0.0.1:1\"]\n");
    let run = run_fetcher(&work, &["--policy", path_str(&policy)]);
    run.assert_code(1);
    run.assert_error(&["fetch"], &["HttpRequestDenied"]);
    assert!(
        run.error_text().contains("127.0.0.1:9"),
        "{}",
        run.describe()
    );
    let good = format!("oci-archive:{}", path_str(&work.out.join("good.tar")));
    let index = skopeo_json(&["inspect", "--raw", &good]);
    assert!(index["manifests"].is_array(), "{index}");
}

/// Runs `outport inspect COMPONENT`, checks it succeeded and prints each of
/// `lines`; returns its output.
fn assert_inspect_shows(component: &str, lines: &[&str]) -> String {
    let run = outport(["inspect", component]);
    run.assert_success();
    let text = run.stdout_text();
    for line in lines {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    text
}

#[test]
fn inspect_prints_a_components_identity() {
    let oci = outport::EXPORTERS[0].wasm;
    let text = assert_inspect_shows(
        "oci",
        &[
            &format!("digest: {}", sha256_digest(oci)),
            &format!("size: {} bytes", oci.len()),
            "world: outport:exporter/exporter",
            "contract version: 0.1.1",
            "  outport:exporter/image@0.1.1\n",
            "  wasi:filesystem/preopens@",
        ],
    );
    assert!(!text.contains("not granted"), "{text}");

    let misbehave = fs::read(outport_test_programs::MISBEHAVE).unwrap();
    assert_inspect_shows(
        outport_test_programs::MISBEHAVE,
        &[
            &format!("digest: {}", sha256_digest(&misbehave)),
            "world: outport:exporter/exporter",
            "  export\n",
        ],
    );
    let dialer = assert_inspect_shows(outport_test_programs::DIALER, &["contract version: 0.1.1"]);
    assert!(
        dialer
            .lines()
            .any(|l| l.contains("wasi:sockets/tcp@") && l.contains("not granted")),
        "{dialer}"
    );
}

#[test]
fn compiling_a_component_is_bounded_in_memory_and_time() {
    for (limit, message) in [
        (
            "compile-memory-bytes = 16777216",
            "memory limit of 16777216 bytes exceeded",
        ),
        ("compile-timeout-seconds = 0", "time limit of 0 s exceeded"),
    ] {
        let work = Work::new();
        let policy = work.policy(&misbehave_limits(limit));
        let run = outport([
            "export",
            path_str(&sample_image()),
            "--output",
            &format!(
                "type=wasm,component={},dest={}",
                outport_test_programs::MISBEHAVE,
                path_str(&work.out.join("bad.txt"))
            ),
            "--policy",
            path_str(&policy),
        ]);
        run.assert_code(2);
        run.assert_error(&["compiling", "outport_test_misbehave"], &[message]);
        assert_eq!(dir_names(&work.out), vec!["sentinel".to_string()]);
    }
}

#[test]
fn a_table_bomb_stops_at_the_table_limit() {
    let digest = sha256_digest(&fs::read(outport_test_programs::TABLE_BOMB).unwrap());
    let bad = format!(
        "type=wasm,component={},id=bad",
        outport_test_programs::TABLE_BOMB
    );
    // The default is also the most the engine's slots hold (a policy
    // asking for more is refused when read).
    for (policy, limit) in [("table-elements = 5000", 5000), ("", 20000)] {
        let work = Work::new();
        let policy = work.policy(&format!("[components.\"{digest}\".limits]\n{policy}\n"));
        let run = work.run_output(&bad, &["--policy", path_str(&policy)], &[], outport);
        run.assert_code(1);
        run.assert_error(
            &["instance \"bad\""],
            &[&format!("table limit of {limit} elements exceeded")],
        );
    }
}

#[test]
fn a_table_too_large_at_start_is_refused_before_anything_runs() {
    let run = Work::new().refused(
        &format!(
            "type=wasm,component={},id=bad",
            outport_test_programs::TABLE_AT_START
        ),
        &[],
    );
    run.assert_error(
        &[outport_test_programs::TABLE_AT_START],
        &["minimum element size of 1000000 which exceeds the limit of 20000"],
    );
}

#[test]
fn a_component_inherits_no_environment_arguments_or_stdin() {
    let work = Work::new();
    let meta = work.tmp.path().join("meta.json");
    let stdin = work.tmp.path().join("stdin.txt");
    fs::write(&stdin, b"secret from stdin").unwrap();
    let cache = work.tmp.path().join("cache");
    let run = work.run_by(
        "ambient",
        &["--metadata-file", path_str(&meta)],
        &["bad.txt"],
        |args| {
            run_outport(args.into_iter().map(Into::into).collect(), |command| {
                command
                    .arg("--cache-dir")
                    .arg(&cache)
                    .env("OUTPORT_TEST_SECRET", "secret from the environment")
                    .stdin(fs::File::open(&stdin).unwrap());
            })
        },
    );
    run.assert_success();
    let metadata = read_json(&meta);
    let response = &exporter_entry(&metadata, "bad")["response"];
    assert_eq!(response["test.env"], "", "{response:#}");
    assert_eq!(response["test.args"], "", "{response:#}");
    let stdin = response["test.stdin"].as_str().unwrap_or_default();
    assert!(!stdin.contains("secret"), "{response:#}");
}

#[test]
fn log_lines_stop_at_the_policy_log_limit() {
    let work = Work::new();
    let policy = work.policy(&misbehave_limits("log-bytes = 200"));
    let run = work.run(
        "log-flood",
        &["--progress", "plain", "--policy", path_str(&policy)],
        &["bad.txt"],
    );
    run.assert_success();
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[bad]") && l.contains("line "))
        .collect();
    // "line N" is 6 to 11 bytes: 200 bytes hold at most 34 of them.
    assert!(
        !lines.is_empty() && lines.len() <= 34,
        "{} log lines:\n{}",
        lines.len(),
        run.describe()
    );
    assert!(
        run.stderr.contains("log limit reached"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_symlink_planted_as_the_output_file_is_refused_not_followed() {
    let work = Work::new();
    let run = work.run("symlink-output", &[], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["is a symlink, not a regular file"]);
    assert!(!run.stderr.contains("do not touch"));
    assert_eq!(work.sentinel_tree()["keep.txt"], b"do not touch");
}

#[test]
fn a_guest_waiting_in_a_host_call_is_stopped_by_the_time_limit() {
    let started = std::time::Instant::now();
    let work = Work::new();
    let run = work.run("sleep", &["--timeout", "2"], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["time limit of 2 s exceeded"]);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}

#[test]
fn guest_text_cannot_forge_lines_or_reach_the_terminal_raw() {
    let run = Work::new().run("forge-log", &[], &[]);
    run.assert_code(1);
    assert!(!run.stderr.contains('\x1b'), "{}", run.stderr);
    assert!(!run.stderr.contains('\x07'), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(
            !line.trim_start().starts_with("[good] error: forged"),
            "forged line: {line}"
        );
    }
    assert!(
        run.stderr.contains("\\n[good] error: forged"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_deep_staging_tree_is_removed_without_crashing_the_host() {
    let run = Work::new().run("deep-dirs", &[], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["deliberate failure after nesting"]);
}
