//! Other tools: skopeo, umoci and the sample script (python3).

use std::io::ErrorKind;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::json::parse_json;
use super::paths::{path_str, sample_script};

/// Runs `program args...`; panics (the test fails, it is not skipped) when
/// the program is not installed.
#[track_caller]
pub fn tool(program: &str, args: &[&str]) -> Output {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "{program} is not installed; the end-to-end tests need it \
             (scripts/install-test-deps installs it, scripts/test runs that first)"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

/// Runs `program args...`, asserts it succeeded and returns its stdout.
#[track_caller]
pub fn tool_ok(program: &str, args: &[&str]) -> String {
    let output = tool(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
pub fn skopeo(args: &[&str]) -> String {
    tool_ok("skopeo", args)
}

/// `skopeo ARGS` whose stdout is JSON (`inspect`, `inspect --raw`).
#[track_caller]
pub fn skopeo_json(args: &[&str]) -> Value {
    let stdout = skopeo(args);
    parse_json(&format!("the output of skopeo {args:?}"), stdout.as_bytes())
}

/// `skopeo --insecure-policy copy --all FROM TO`: copies every platform and
/// checks every blob's digest on the way.
#[track_caller]
pub fn skopeo_copy_all(from: &str, to: &str) {
    skopeo(&["--insecure-policy", "copy", "--all", "--quiet", from, to]);
}

/// [`skopeo_copy_all`] to a plain-HTTP registry (`TO` a `docker://`
/// reference), keeping the blobs' digests.
#[track_caller]
pub fn skopeo_push_all(from: &str, to: &str) {
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--all",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        from,
        to,
    ]);
}

#[track_caller]
pub fn umoci(args: &[&str]) -> String {
    tool_ok("umoci", args)
}

/// Runs `python3 examples/make-sample-image.py ARGS`.
#[track_caller]
pub fn sample_script_run(args: &[&str]) -> Output {
    let script = sample_script();
    let mut all = vec![path_str(&script)];
    all.extend_from_slice(args);
    tool("python3", &all)
}
