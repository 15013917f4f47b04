//! The policy file: `outport policy show` prints the safe defaults and
//! a file merged over them; an unknown key, a limit beyond what the engine
//! supports and an unpinned component are refused in one line; an example
//! policy matches the schema.

use super::*;

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
