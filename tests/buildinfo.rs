//! Build info end to end: `--build-sources`, `--attr`, the
//! `moby.buildkit.buildinfo.v0` config field, the `containerimage.buildinfo`
//! response keys, credential redaction and the per-output opt-out.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::*;

mod merge;

const KEY: &str = "moby.buildkit.buildinfo.v0";

/// Secrets planted in the inputs; none may appear in any output.
const SECRETS: &[&str] = &[
    "s3cr3t-gh-t0ken",
    "hunter2-pass",
    "qs-t0ken-value",
    "AKIAEXAMPLEKEY",
    "amz-signature-value",
    "attr-t0ken",
    "old-input-t0ken",
];

/// The sources file used by most tests (with credentials in it).
fn sources_file(dir: &Path) -> PathBuf {
    let path = dir.join("sources.json");
    let sources = json!([
        {"type": "git", "ref": "https://builder:s3cr3t-gh-t0ken@github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
        {"type": "http", "ref": "https://dl.example.com/tool.tgz?token=qs-t0ken-value&arch=amd64", "pin": "sha256:4194552"},
        {"type": "http", "ref": "https://bucket.s3.amazonaws.com/x.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20240101&X-Amz-Signature=amz-signature-value", "pin": "sha256:77"},
        {"type": "image", "ref": "docker.io/tonistiigi/xx@sha256:21a61be4744f6531cb5f33b0e6f40ede41fa3a1b8c82d5946178f80cc84bfc04"},
        {"type": "git", "ref": "ssh://git:hunter2-pass@example.com/infra.git", "pin": "abc"}
    ]);
    fs::write(&path, serde_json::to_vec_pretty(&sources).unwrap()).unwrap();
    path
}

/// What `sources_file` becomes in every config, before the base image.
fn expected_file_sources() -> Vec<Value> {
    vec![
        json!({"type": "image", "ref": "docker.io/tonistiigi/xx@sha256:21a61be4744f6531cb5f33b0e6f40ede41fa3a1b8c82d5946178f80cc84bfc04", "pin": "sha256:21a61be4744f6531cb5f33b0e6f40ede41fa3a1b8c82d5946178f80cc84bfc04"}),
        json!({"type": "http", "ref": "https://bucket.s3.amazonaws.com/x.tgz?X-Amz-Algorithm=AWS4-HMAC-SHA256", "pin": "sha256:77"}),
        json!({"type": "http", "ref": "https://dl.example.com/tool.tgz?arch=amd64", "pin": "sha256:4194552"}),
        json!({"type": "git", "ref": "https://github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"}),
        json!({"type": "git", "ref": "ssh://git@example.com/infra.git", "pin": "abc"}),
    ]
}

/// Sorted as outport sorts: by ref, then type, then pin.
fn sorted(mut sources: Vec<Value>) -> Vec<Value> {
    sources.sort_by_key(|s| {
        (
            s["ref"].as_str().unwrap_or_default().to_owned(),
            s["type"].as_str().unwrap_or_default().to_owned(),
            s["pin"].as_str().unwrap_or_default().to_owned(),
        )
    });
    sources
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(value).unwrap())
}

#[track_caller]
fn decode(value: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap_or_else(|e| panic!("{value:?} is not base64: {e}"));
    parse_json("build info", &bytes)
}

/// Asserts that no secret appears in `bytes` (nor in any base64 build-info
/// field inside them, decoded).
#[track_caller]
fn assert_no_secrets(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} contains {secret:?}");
    }
}

/// The decoded build info of the `arch` config of an OCI layout, or `None`.
#[track_caller]
fn config_build_info(files: &LayoutFiles, arch: &str) -> Option<Value> {
    let manifest = files.manifest(arch);
    let config = files.blob_json(str_at(&manifest["config"], "digest"));
    config[KEY].as_str().map(decode)
}

/// The image manifest `index.json` points at (a single-platform layout).
#[track_caller]
fn root_manifest(files: &LayoutFiles) -> Value {
    files.blob_json(str_at(&files.root(), "digest"))
}

/// The sample with base-image annotations: on the amd64 manifest itself
/// and, for arm64, on its entry in the index.
fn annotated_sample(parent: &Path) -> PathBuf {
    let dir = copy_sample(parent, "input");
    let layout = Layout::open(&dir);
    let amd64 = layout.files().manifest_descriptor("amd64");
    layout.rewrite_json_blob(str_at(&amd64, "digest"), |m| {
        m["annotations"] = json!({
            "org.opencontainers.image.base.name": "alpine:3.19",
            "org.opencontainers.image.base.digest": "sha256:1d30d1ba3cb90962067e9b29491fbd56997979d54376f23f01448b5c5cd8b462",
        });
    });
    let index = str_at(&layout.files().root(), "digest").to_owned();
    layout.rewrite_json_blob(&index, |i| {
        for entry in i["manifests"].as_array_mut().unwrap() {
            if entry["platform"]["architecture"] == "arm64" {
                entry["annotations"] = json!({
                    "org.opencontainers.image.base.name": "docker.io/library/debian:12",
                });
            }
        }
    });
    dir
}

fn export_args(input: &Path, extra: &[&str], outputs: &[String], metadata: &Path) -> Vec<String> {
    let mut args = vec!["export".to_owned(), path_str(input).to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    args.push("--metadata-file".into());
    args.push(path_str(metadata).to_owned());
    args
}

/// Per platform of the annotated sample: its architecture, its platform
/// and the build info its config must hold (the sources file's, redacted,
/// plus its own base image).
fn expected_platforms() -> [(&'static str, &'static str, Value); 2] {
    let mut amd64 = expected_file_sources();
    amd64.push(json!({"type": "image", "ref": "docker.io/library/alpine:3.19", "pin": "sha256:1d30d1ba3cb90962067e9b29491fbd56997979d54376f23f01448b5c5cd8b462"}));
    let mut arm64 = expected_file_sources();
    arm64.push(json!({"type": "image", "ref": "docker.io/library/debian:12"}));
    [
        ("amd64", "linux/amd64", json!({"sources": sorted(amd64)})),
        ("arm64", "linux/arm64/v8", json!({"sources": sorted(arm64)})),
    ]
}

/// Checks the `arch` config of `files` (exported to `tarball` from
/// `input_files`): its build info is `want`, every other config field is
/// as it was, layers are untouched, skopeo reads the same, and `response`
/// has the platform's key.
fn assert_platform(
    files: &LayoutFiles,
    input_files: &LayoutFiles,
    tarball: &Path,
    response: &Value,
    (arch, platform, want): (&str, &str, &Value),
) {
    assert_eq!(
        config_build_info(files, arch).as_ref(),
        Some(want),
        "{arch}"
    );

    // Every other config field is as it was; layers are untouched.
    let old_manifest = input_files.manifest(arch);
    let new_manifest = files.manifest(arch);
    assert_eq!(old_manifest["layers"], new_manifest["layers"]);
    assert_eq!(old_manifest["annotations"], new_manifest["annotations"]);
    let old_config = input_files.blob_json(str_at(&old_manifest["config"], "digest"));
    let mut new_config = files.blob_json(str_at(&new_manifest["config"], "digest"));
    new_config.as_object_mut().unwrap().remove(KEY);
    assert_eq!(old_config, new_config, "{arch}");

    // skopeo reads the same config (raw: its parsed view drops the key).
    let config = skopeo_json(&[
        "inspect",
        "--config",
        "--raw",
        "--override-arch",
        arch,
        &oci_archive(tarball),
    ]);
    assert_eq!(&decode(config[KEY].as_str().unwrap()), want, "{arch}");

    // The per-platform response key (decoded in the metadata file).
    assert_eq!(
        &response[format!("containerimage.buildinfo/{platform}")],
        want,
        "{response}"
    );
}

/// `buildinfo=false` in the same run: the input as it was, no key.
fn assert_plain_unchanged(plain: &Path, input_files: &LayoutFiles, doc: &Value) {
    let plain_files = LayoutFiles::from_dir(plain);
    assert_eq!(
        plain_files.root()["digest"],
        input_files.root()["digest"],
        "buildinfo=false must leave the image unchanged"
    );
    assert_eq!(config_build_info(&plain_files, "amd64"), None);
    let plain_response = &exporter_entry(doc, "plain")["response"];
    assert!(
        plain_response
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("containerimage.buildinfo")),
        "{plain_response}"
    );
}

/// No credential in the run's terminal output nor in a response value
/// (decoded).
fn assert_no_secrets_in_run(run: &Run, response: &Value) {
    assert_no_secrets("stdout", &run.stdout);
    assert_no_secrets("stderr", run.stderr.as_bytes());
    for value in response.as_object().unwrap().values() {
        if let Some(s) = value.as_str()
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
        {
            assert_no_secrets("a response value", &bytes);
        }
    }
}

#[test]
fn multi_platform_sources_redaction_and_opt_out() {
    let tmp = tempdir();
    let input = annotated_sample(tmp.path());
    let sources = sources_file(tmp.path());
    let out = mkdir(tmp.path(), "out");
    let tarball = out.join("image.tar");
    let plain = out.join("plain");
    let metadata = out.join("metadata.json");
    let run = outport(export_args(
        &input,
        &["--build-sources", path_str(&sources)],
        &[
            format!("type=oci,dest={},id=tarball", path_str(&tarball)),
            format!(
                "type=oci,tar=false,buildinfo=false,dest={},id=plain",
                path_str(&plain)
            ),
        ],
        &metadata,
    ));
    run.assert_success();

    let input_files = LayoutFiles::from_dir(&input);
    let files = LayoutFiles::from_tar(&tarball);
    files.verify();

    let expected = expected_platforms();
    let doc = read_json(&metadata);
    let response = &exporter_entry(&doc, "tarball")["response"];
    for (arch, platform, want) in &expected {
        assert_platform(
            &files,
            &input_files,
            &tarball,
            response,
            (arch, platform, want),
        );
    }
    assert!(response.get("containerimage.buildinfo").is_none());
    // The tarball's digest is that of its new root.
    assert_eq!(
        response["containerimage.digest"],
        files.root()["digest"],
        "{response}"
    );
    let layers = |f: &LayoutFiles| {
        ["amd64", "arm64"]
            .iter()
            .flat_map(|a| f.manifest(a)["layers"].as_array().unwrap().clone())
            .collect::<Vec<_>>()
    };
    for layer in layers(&files) {
        let digest = str_at(&layer, "digest");
        assert_eq!(files.blob(digest), input_files.blob(digest));
    }

    assert_plain_unchanged(&plain, &input_files, &doc);

    // No credential anywhere: the tarball, every config's decoded field,
    // the metadata file, the terminal output.
    assert_no_secrets("the tarball", &fs::read(&tarball).unwrap());
    for (arch, _, _) in &expected {
        let info = config_build_info(&files, arch).unwrap();
        assert_no_secrets("a config's build info", info.to_string().as_bytes());
    }
    assert_no_secrets("the metadata file", &fs::read(&metadata).unwrap());
    assert_no_secrets_in_run(&run, response);

    // Deterministic: the same run again gives the same image.
    let again = out.join("again.tar");
    let metadata2 = out.join("metadata2.json");
    outport(export_args(
        &input,
        &["--build-sources", path_str(&sources)],
        &[format!("type=oci,dest={}", path_str(&again))],
        &metadata2,
    ))
    .assert_success();
    assert_eq!(LayoutFiles::from_tar(&again).root(), files.root());
}

#[test]
fn nothing_asked_leaves_the_image_unchanged() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let dest = out.join("layout");
    let metadata = out.join("metadata.json");
    // Attributes alone, without buildinfo-attrs=true, add nothing.
    let run = outport(export_args(
        &sample_image(),
        &["--attr", "build-arg:X=1"],
        &[format!("type=oci,tar=false,dest={}", path_str(&dest))],
        &metadata,
    ));
    run.assert_success();
    let files = LayoutFiles::from_dir(&dest);
    assert_eq!(
        files.root()["digest"],
        LayoutFiles::from_dir(&sample_image()).root()["digest"]
    );
    let doc = read_json(&metadata);
    assert!(
        doc.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("containerimage.buildinfo")),
        "{doc}"
    );
}

#[test]
fn malformed_build_sources_are_a_usage_error() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    // A run that must stop before anything runs: exit 2, one error line
    // naming `mention` and saying one of `words`, nothing written.
    let refused = |extra: &[&str], options: &str, mention: &str, words: &[&str]| {
        let run = outport(export_args(
            &sample_image(),
            extra,
            &[format!(
                "type=oci,{options}dest={}",
                path_str(&out.join("x.tar"))
            )],
            &out.join("metadata.json"),
        ));
        run.assert_code(2);
        run.assert_error(&[mention], words);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert_empty_or_absent(&out);
    };
    let cases: [(&str, &str); 4] = [
        ("[{\"type\": ", "not valid json"),
        (r#"{"sources":[]}"#, "expected a json list"),
        (
            r#"[{"type":"svn","ref":"x"}]"#,
            "not one of image, git, http",
        ),
        (r#"[{"type":"git","ref":"x","pinn":"y"}]"#, "unknown field"),
    ];
    for (i, (content, words)) in cases.iter().enumerate() {
        let file = tmp.path().join(format!("sources-{i}.json"));
        fs::write(&file, content).unwrap();
        let file = path_str(&file);
        refused(&["--build-sources", file], "", file, &[words]);
    }
    let missing = tmp.path().join("missing.json");
    let missing = path_str(&missing);
    refused(
        &["--build-sources", missing],
        "",
        missing,
        &["no such file"],
    );
    refused(&["--attr", "novalue"], "", "--attr", &["KEY=VALUE"]);
    refused(
        &[],
        "buildinfo=maybe,",
        "buildinfo",
        &["expected true or false"],
    );
}
