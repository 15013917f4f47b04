//! BuildKit's two forms of attestation manifest (`oci-artifact=true|false`
//! on the oci, docker and registry exporters): what each holds, that
//! skopeo reads and copies both, and that the `local` and `tar` exporters
//! find the provenance in both (also by `subject` alone) and name it with
//! `attestation-prefix`, and that an output whose options rewrite the image
//! manifests (zstd, uncompressed layers, timestamps) attests the manifests
//! it writes.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::export_registry::{registry, skopeo_insecure, unique_repo};

const ARTIFACT_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";
const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Checks the form of the attestation manifest `manifest` (listed in
/// `index` as `entry`): an OCI artifact when `artifact`, else BuildKit's
/// image manifest with an `unknown/unknown` config.
#[track_caller]
pub fn check_form(
    files: &LayoutFiles,
    index: &Value,
    entry: &Value,
    manifest: &Value,
    artifact: bool,
) {
    let layer = &array_at(manifest, "layers")[0];
    if artifact {
        assert_eq!(manifest["artifactType"], ARTIFACT_TYPE, "{manifest}");
        // The empty descriptor, exactly (OCI's DescriptorEmptyJSON).
        assert_eq!(
            manifest["config"],
            json!({"mediaType": MT_EMPTY, "size": 2, "data": "e30=",
                   "digest": sha256_digest(b"{}")}),
        );
        assert_eq!(files.blob(str_at(&manifest["config"], "digest")), b"{}");
        // The subject is the attested manifest, as its index entry names it.
        let subject_digest = &entry["annotations"]["vnd.docker.reference.digest"];
        let target = array_at(index, "manifests")
            .iter()
            .find(|e| &e["digest"] == subject_digest)
            .unwrap_or_else(|| panic!("no entry for the subject in {index}"));
        assert_eq!(
            manifest["subject"],
            json!({"mediaType": target["mediaType"], "digest": target["digest"],
                   "size": target["size"]})
        );
    } else {
        assert!(manifest.get("artifactType").is_none(), "{manifest}");
        assert!(manifest.get("subject").is_none(), "{manifest}");
        assert_eq!(manifest["config"]["mediaType"], MT_CONFIG, "{manifest}");
        let config = files.blob_json(str_at(&manifest["config"], "digest"));
        assert_eq!(
            config,
            json!({"architecture": "unknown", "os": "unknown", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}})
        );
    }
}

fn export_attested(outputs: &[String]) -> Run {
    let docker_config = tempdir();
    std::fs::write(docker_config.path().join("config.json"), "{}").expect("config.json");
    let mut args = vec![
        "export".to_owned(),
        path_str(&sample_image()).to_owned(),
        "--attest".to_owned(),
        "provenance".to_owned(),
    ];
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    let cache = tempdir();
    let env = [
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("DOCKER_CONFIG", path_str(docker_config.path())),
    ];
    outport_with_cache(args, cache.path(), &env)
}

/// The attestation entries of the layout's image index, with their
/// manifests and statements, by subject digest.
fn attestations(files: &LayoutFiles) -> Vec<(Value, Value, Vec<u8>)> {
    let index = files.blob_json(str_at(&files.root(), "digest"));
    array_at(&index, "manifests")
        .iter()
        .filter(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .map(|e| {
            let manifest = files.blob_json(str_at(e, "digest"));
            let statement = files
                .blob(str_at(&array_at(&manifest, "layers")[0], "digest"))
                .to_vec();
            (e.clone(), manifest, statement)
        })
        .collect()
}

#[test]
fn both_forms_as_buildkit_writes_them_and_skopeo_reads_both() {
    let tmp = tempdir();
    let artifact = tmp.path().join("artifact");
    let image = tmp.path().join("image");
    let host = registry("OUTPORT_TEST_REGISTRY");
    let pushed = format!("{host}/{}:att", unique_repo("attestation-forms"));
    let run = export_attested(&[
        format!("type=oci,tar=false,dest={}", path_str(&artifact)),
        format!(
            "type=oci,tar=false,oci-artifact=false,dest={}",
            path_str(&image)
        ),
        format!("type=registry,name={pushed},registry.insecure=true"),
    ]);
    run.assert_success();
    for (dir, is_artifact) in [(&artifact, true), (&image, false)] {
        let files = LayoutFiles::from_dir(dir);
        files.verify();
        let index = files.blob_json(str_at(&files.root(), "digest"));
        let found = attestations(&files);
        assert_eq!(found.len(), 2, "{index}");
        for (entry, manifest, _) in &found {
            check_form(&files, &index, entry, manifest, is_artifact);
        }
        // skopeo lists both forms in the raw index and copies every one.
        let raw = skopeo_json(&["inspect", "--raw", &oci_dir(dir)]);
        assert_eq!(raw, index);
        let copy = tmp.path().join(format!("copy-{is_artifact}"));
        skopeo_copy_all(&oci_dir(dir), &oci_dir(&copy));
        let copied = LayoutFiles::from_dir(&copy);
        copied.verify();
        for (entry, manifest, _) in &found {
            assert_eq!(&copied.blob_json(str_at(entry, "digest")), manifest);
            copied.blob(str_at(&manifest["config"], "digest"));
        }
    }
    // The statements are the same in both forms: only the wrapping differs.
    let statements = |dir: &Path| -> Vec<Vec<u8>> {
        attestations(&LayoutFiles::from_dir(dir))
            .into_iter()
            .map(|(_, _, s)| s)
            .collect()
    };
    assert_eq!(statements(&artifact), statements(&image));
    // The registry exporter pushes the artifact form (its default too);
    // skopeo reads it back from the registry and copies every manifest.
    let raw = parse_json(
        "the pushed index",
        skopeo_insecure(&["inspect", "--raw", &format!("docker://{pushed}")]).as_bytes(),
    );
    // (Its statements name the image, so its digests are its own.)
    assert_eq!(array_at(&raw, "manifests").len(), 4, "{raw}");
    let back = tmp.path().join("back");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{pushed}"),
        &oci_dir(&back),
    ]);
    let copied = LayoutFiles::from_dir(&back);
    copied.verify();
    let index = copied.blob_json(str_at(&copied.root(), "digest"));
    let found = attestations(&copied);
    assert_eq!(found.len(), 2, "{index}");
    for (entry, manifest, _) in found {
        check_form(&copied, &index, &entry, &manifest, true);
    }
}

#[test]
fn oci_artifact_with_docker_media_types_is_a_usage_error() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let run = export_attested(&[format!(
        "type=oci,oci-mediatypes=false,oci-artifact=true,dest={}",
        path_str(&out.join("x.tar"))
    )]);
    run.assert_code(2);
    run.assert_error(&["oci-artifact"], &["oci-mediatypes=false"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    assert_empty_or_absent(&out);
}

#[test]
fn rootfs_exporters_find_provenance_in_both_forms_with_a_prefix() {
    let tmp = tempdir();
    let artifact = tmp.path().join("artifact");
    let image = tmp.path().join("image");
    export_attested(&[
        format!("type=oci,tar=false,dest={}", path_str(&artifact)),
        format!(
            "type=oci,tar=false,oci-artifact=false,dest={}",
            path_str(&image)
        ),
    ])
    .assert_success();
    let expected: Vec<(String, Vec<u8>)> = {
        let files = LayoutFiles::from_dir(&artifact);
        let index = files.blob_json(str_at(&files.root(), "digest"));
        attestations(&files)
            .into_iter()
            .map(|(entry, _, statement)| {
                let subject = &entry["annotations"]["vnd.docker.reference.digest"];
                let target = array_at(&index, "manifests")
                    .iter()
                    .find(|e| &e["digest"] == subject)
                    .expect("the subject's entry")
                    .clone();
                let dir = platform_string(&target["platform"]).replace('/', "_");
                (dir, statement)
            })
            .collect()
    };
    assert_eq!(expected.len(), 2);

    // An index whose artifacts say nothing but their artifact type: the
    // subject alone names the manifest.
    let bare = copy_layout_without_reference_annotations(tmp.path(), &artifact);

    for (name, input) in [("artifact", &artifact), ("image", &image), ("bare", &bare)] {
        let local = tmp.path().join(format!("local-{name}"));
        let tarball = tmp.path().join(format!("{name}.tar"));
        export_ok_plain(
            input,
            &[
                format!(
                    "type=local,dest={},attestation-prefix=att-",
                    path_str(&local)
                ),
                format!("type=tar,dest={},attestation-prefix=x.", path_str(&tarball)),
            ],
        );
        let listed = tool_ok("tar", &["-tf", path_str(&tarball)]);
        for (dir, statement) in &expected {
            let got = fs::read(local.join(dir).join("att-provenance.json"))
                .unwrap_or_else(|e| panic!("{name}: {dir}/att-provenance.json: {e}"));
            assert_eq!(&got, statement, "{name}");
            assert!(!local.join(dir).join("provenance.json").exists(), "{name}");
            assert!(
                listed
                    .lines()
                    .any(|l| l == format!("{dir}/x.provenance.json")),
                "{name}: {listed}"
            );
        }
    }

    // A prefix that is not a file-name prefix is refused.
    let out = tmp.path().join("refused");
    let run = export(
        artifact.as_os_str(),
        &[format!(
            "type=local,dest={},attestation-prefix=../",
            path_str(&out)
        )],
        None,
    );
    run.assert_code(1);
    run.assert_error(&["attestation-prefix"], &["not a file-name prefix"]);
    assert!(!out.exists());
}

fn export_ok_plain(input: &Path, outputs: &[String]) {
    export(input.as_os_str(), outputs, None).assert_success();
}

/// A copy of the layout at `from` whose image index lists its attestation
/// artifacts with their `artifactType` and no `vnd.docker.reference.*`
/// annotations.
fn copy_layout_without_reference_annotations(parent: &Path, from: &Path) -> std::path::PathBuf {
    let to = parent.join("bare");
    copy_dir(from, &to);
    let layout = Layout::open(&to);
    layout.rewrite_json_blob(str_at(&layout.files().root(), "digest"), |index| {
        for entry in index["manifests"].as_array_mut().expect("manifests") {
            let reference = &entry["annotations"]["vnd.docker.reference.type"];
            if reference == "attestation-manifest" {
                entry
                    .as_object_mut()
                    .expect("an entry")
                    .remove("annotations");
                entry["artifactType"] = Value::from(ARTIFACT_TYPE);
            }
        }
    });
    to
}

/// Each attestation entry of the layout at `dir`: the image manifest it
/// names (by `vnd.docker.reference.digest`, and by `subject` in the
/// artifact form) is one the index lists and the layout holds, and the
/// provenance statement's subject is that manifest's digest. Returns the
/// image manifests attested.
#[track_caller]
fn attested_manifests(dir: &Path, artifact: bool) -> Vec<Value> {
    let files = LayoutFiles::from_dir(dir);
    files.verify();
    let index = files.blob_json(str_at(&files.root(), "digest"));
    let found = attestations(&files);
    assert_eq!(found.len(), 2, "{index}");
    let mut attested = Vec::new();
    for (entry, manifest, statement) in &found {
        check_form(&files, &index, entry, manifest, artifact);
        let subject = str_at(&entry["annotations"], "vnd.docker.reference.digest");
        let bytes = files.blob(subject);
        assert_eq!(sha256_digest(bytes), subject, "the manifest's own digest");
        if artifact {
            assert_eq!(manifest["subject"]["digest"], subject, "{manifest}");
            assert_eq!(manifest["subject"]["size"], bytes.len() as u64);
        }
        let statement = parse_json("the provenance statement", statement);
        let hex = subject.trim_start_matches("sha256:");
        assert!(
            array_at(&statement, "subject")
                .iter()
                .any(|s| s["digest"]["sha256"] == hex),
            "the statement's subject is not {subject}: {}",
            statement["subject"]
        );
        attested.push(parse_json("the image manifest", bytes));
    }
    // skopeo reads the index as written and copies every manifest.
    assert_eq!(skopeo_json(&["inspect", "--raw", &oci_dir(dir)]), index);
    let copy = dir.with_extension("copy");
    skopeo_copy_all(&oci_dir(dir), &oci_dir(&copy));
    LayoutFiles::from_dir(&copy).verify();
    attested
}

#[test]
fn rewritten_manifests_are_the_attested_subjects() {
    let tmp = tempdir();
    let zstd = tmp.path().join("zstd");
    let plain = tmp.path().join("plain");
    export_attested(&[
        format!(
            "type=oci,tar=false,compression=zstd,force-compression=true,dest={}",
            path_str(&zstd)
        ),
        format!(
            "type=oci,tar=false,compression=uncompressed,force-compression=true,rewrite-timestamp=true,oci-artifact=false,dest={}",
            path_str(&plain)
        ),
    ])
    .assert_success();
    for (dir, artifact, media_type) in [
        (&zstd, true, MT_LAYER_ZSTD),
        (&plain, false, MT_LAYER_PLAIN),
    ] {
        for manifest in attested_manifests(dir, artifact) {
            for layer in array_at(&manifest, "layers") {
                assert_eq!(layer["mediaType"], media_type, "{manifest}");
            }
        }
    }
}
