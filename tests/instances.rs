//! Instances kept apart: a component that fails, traps, loops or exhausts
//! its memory fails alone (its destination holds nothing, its siblings
//! finish), `--fail-fast` cancels the rest, `--iidfile` names one instance's
//! image. The misbehaving component is `tests/programs/guests/misbehave`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// `type=wasm,component=<misbehave>,action=ACTION,dest=DEST,id=ID`.
fn misbehave(action: &str, dest: &Path, id: &str) -> String {
    format!(
        "type=wasm,component={},action={action},dest={},id={id}",
        outport_test_programs::MISBEHAVE,
        path_str(dest)
    )
}

/// Runs `outport export` on the sample with `outputs` and extra arguments.
fn run(outputs: &[String], extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec!["export".into(), path_str(&sample_image()).into()];
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    outport(args)
}

/// Checks that a failed instance left nothing: `dir` holds exactly `expected`.
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut names = dir_names(dir);
    names.sort();
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "entries of {}", dir.display());
}

#[test]
fn a_component_given_by_path_runs() {
    let tmp = tempdir();
    let meta = tmp.path().join("meta.json");
    let run = run(
        &[misbehave("ok", &tmp.path().join("out.txt"), "third-party")],
        &["--metadata-file", path_str(&meta)],
    );
    run.assert_success();
    assert_eq!(
        fs::read(tmp.path().join("out.txt")).unwrap(),
        b"complete output"
    );
    assert_metadata_valid(&meta);
    let metadata = read_json(&meta);
    let entry = exporter_entry(&metadata, "third-party");
    assert_eq!(entry["type"], "wasm");
    assert_eq!(entry["response"]["test.ok"], "third-party");
}

#[test]
fn guest_output_is_shown_prefixed_by_the_instance_id() {
    let tmp = tempdir();
    let run = run(
        &[misbehave("print", &tmp.path().join("out.txt"), "talker")],
        &["--progress", "plain"],
    );
    run.assert_success();
    assert!(
        run.stderr.contains("[talker] hello from stdout"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("[talker] hello from stderr"),
        "{}",
        run.describe()
    );
}

/// One misbehaving instance next to a good `oci` one: it fails with
/// `message` and the metadata file's failure `code`, leaves nothing, and
/// the good output is complete.
fn fails_alone(action: &str, extra: &[&str], message: &[&str], code: &str) {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let meta = tmp.path().join("meta.json");
    let good = out.join("good.tar");
    let mut args = vec!["--metadata-file", path_str(&meta)];
    args.extend_from_slice(extra);
    let run = run(
        &[
            misbehave(action, &out.join("bad.txt"), "bad"),
            format!("type=oci,dest={},id=good", path_str(&good)),
        ],
        &args,
    );
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], message);
    assert_only(&out, &["good.tar"]);
    LayoutFiles::from_tar(&good).verify();
    assert_metadata_valid(&meta);
    let metadata = read_json(&meta);
    assert_eq!(exporter_entry(&metadata, "good")["status"], "ok");
    let bad = exporter_entry(&metadata, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["code"], code, "{bad:#}");
    assert!(exporter_entry(&metadata, "good").get("code").is_none());
    let error = bad["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        message.iter().any(|m| error.contains(&m.to_lowercase())),
        "{error}"
    );
    // The legacy top-level keys come from the instance that succeeded.
    assert_eq!(
        metadata["containerimage.digest"],
        exporter_entry(&metadata, "good")["response"]["containerimage.digest"]
    );
}

#[test]
fn a_returned_error_fails_only_its_instance() {
    fails_alone("error", &[], &["deliberate failure"], "guest.io");
}

#[test]
fn a_panic_fails_only_its_instance() {
    fails_alone(
        "panic",
        &[],
        &[
            "guest trapped: wasm trap: wasm `unreachable` instruction executed (guest output: deliberate panic)",
        ],
        "trap",
    );
}

#[test]
fn an_endless_loop_hits_the_time_limit() {
    fails_alone(
        "loop",
        &["--timeout", "2"],
        &["time limit of 2 s exceeded"],
        "limit.time",
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    fails_alone("grow-memory", &[], &["memory limit"], "limit.memory");
}

#[test]
fn blobs_created_by_a_guest_are_capped() {
    fails_alone(
        "put-blob-flood",
        &[],
        &["over the 67108864-byte limit"],
        "limit.put-blob-bytes",
    );
}

#[test]
fn a_response_with_a_repeated_key_is_refused() {
    let tmp = tempdir();
    let run = run(
        &[format!(
            "type=wasm,component={},action=duplicate-key,output=none",
            outport_test_programs::MISBEHAVE
        )],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&["instance \"0\""], &["\"k\" is given twice"]);
    drop(tmp);
}

#[test]
fn fail_fast_cancels_the_others() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let meta = tmp.path().join("meta.json");
    let run = run(
        &[
            misbehave("loop", &out.join("slow.txt"), "slow"),
            misbehave("error", &out.join("bad.txt"), "bad"),
        ],
        &["--fail-fast", "--metadata-file", path_str(&meta)],
    );
    run.assert_code(1);
    assert_only(&out, &[]);
    assert_metadata_valid(&meta);
    let metadata = read_json(&meta);
    let slow = exporter_entry(&metadata, "slow");
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["code"], "cancelled", "{metadata:#}");
    assert!(
        slow["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled because instance \"bad\" failed"),
        "{metadata:#}"
    );
}

#[test]
fn a_missing_component_is_a_usage_error() {
    let tmp = tempdir();
    let dest = tmp.path().join("x.txt");
    let run = run(
        &[format!(
            "type=wasm,component={},dest={}",
            path_str(&tmp.path().join("nope.wasm")),
            path_str(&dest)
        )],
        &[],
    );
    run.assert_code(2);
    run.assert_error(&["nope.wasm"], &["cannot read component"]);
    assert!(!dest.exists());
}

#[test]
fn iidfile_holds_the_image_id() {
    let tmp = tempdir();
    let iid = tmp.path().join("iid");
    let single = single_platform_sample(tmp.path(), "single", "amd64", "v1");
    let mut args: Vec<String> = vec!["export".into(), path_str(&single).into()];
    for spec in [
        format!(
            "type=wasm,component={},output=none,id=first",
            outport_test_programs::MISBEHAVE
        ),
        format!(
            "type=oci,dest={},id=img",
            path_str(&tmp.path().join("o.tar"))
        ),
    ] {
        args.push("--output".into());
        args.push(spec);
    }
    args.extend(["--iidfile".to_string(), path_str(&iid).to_string()]);
    let first = outport(&args);
    first.assert_success();
    // The first oci/docker instance's config digest, as buildx writes it.
    let files = LayoutFiles::from_tar(&tmp.path().join("o.tar"));
    let manifest: Value = files.blob_json(str_at(&files.root(), "digest"));
    assert_eq!(
        fs::read_to_string(&iid).unwrap(),
        str_at(&manifest["config"], "digest")
    );

    // A multi-platform image has no single config: its index digest.
    let iid2 = tmp.path().join("iid2");
    let second = run(
        &[format!(
            "type=oci,dest={},id=multi",
            path_str(&tmp.path().join("m.tar"))
        )],
        &["--iidfile", path_str(&iid2), "--iidfile-from", "multi"],
    );
    second.assert_success();
    let root = LayoutFiles::from_tar(&tmp.path().join("m.tar")).root();
    assert_eq!(fs::read_to_string(&iid2).unwrap(), str_at(&root, "digest"));
}

#[test]
fn duplicate_instance_ids_are_refused_before_anything_runs() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let run = run(
        &[
            format!("type=oci,dest={},id=same", path_str(&out.join("a.tar"))),
            format!("type=oci,dest={},id=same", path_str(&out.join("b.tar"))),
        ],
        &[],
    );
    run.assert_code(2);
    run.assert_error(&["\"same\""], &["two outputs have the instance ID"]);
    assert_only(&out, &[]);
}
