//! SLSA provenance attestations end to end: `--attest provenance[,mode=]`,
//! BuildKit's attestation-manifest layout, the in-toto statement, redaction,
//! the per-output opt-out, and what skopeo makes of the result.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::attestation_forms::check_form;
use crate::common::*;

mod usage;

const SECRETS: &[&str] = &["pr0v-s3cr3t-t0ken", "pr0v-qs-secret", "pr0v-attr-pass"];
/// 2023-11-14T22:13:20Z.
const EPOCH: &str = "1700000000";
const EPOCH_TIME: &str = "2023-11-14T22:13:20Z";
const NAME: &str = "example.com/team/app:1.0";
const MT_IN_TOTO: &str = "application/vnd.in-toto+json";

fn sources_file(dir: &Path) -> String {
    let path = dir.join("sources.json");
    let sources = json!([
        {"type": "git", "ref": "https://ci:pr0v-s3cr3t-t0ken@github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
        {"type": "http", "ref": "https://dl.example.com/tool.tgz?token=pr0v-qs-secret&arch=amd64", "pin": "sha256:4194552"},
        {"type": "image", "ref": "alpine:3.19", "pin": "sha256:1d30d1ba3cb90962067e9b29491fbd56997979d54376f23f01448b5c5cd8b462"},
    ]);
    fs::write(&path, serde_json::to_vec(&sources).unwrap()).unwrap();
    path_str(&path).to_owned()
}

/// The resolved dependencies `sources_file` gives: credentials stripped,
/// images as package URLs, in the build info's order (by ref).
fn expected_dependencies() -> Value {
    json!([
        {"uri": "pkg:docker/alpine@3.19", "digest": {"sha256": "1d30d1ba3cb90962067e9b29491fbd56997979d54376f23f01448b5c5cd8b462"}},
        {"uri": "https://dl.example.com/tool.tgz?arch=amd64", "digest": {"sha256": "4194552"}},
        {"uri": "https://github.com/example/app.git#main", "digest": {"sha1": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"}},
    ])
}

/// `outport export INPUT EXTRA... --output O...` with `SOURCE_DATE_EPOCH`.
fn run(input: &Path, extra: &[&str], outputs: &[String]) -> Run {
    let mut args = vec!["export".to_owned(), path_str(input).to_owned()];
    args.extend(extra.iter().map(|s| s.to_string()));
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    let cache = tempdir();
    outport_with_cache(args, cache.path(), &[("SOURCE_DATE_EPOCH", EPOCH)])
}

#[track_caller]
fn assert_no_secrets(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} contains {secret:?}");
    }
}

/// The index that holds the image manifests (the root's target).
fn image_index(files: &LayoutFiles) -> Value {
    files.blob_json(str_at(&files.root(), "digest"))
}

fn is_attestation(entry: &Value) -> bool {
    entry["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
}

/// One attestation, read from a layout and checked for BuildKit's layout.
struct Attestation {
    entry: Value,
    statement: Value,
}

/// The attestation entries of `index`, each checked: platform
/// `unknown/unknown`, an OCI manifest in one of BuildKit's forms (see
/// [`check_form`]) with one in-toto layer, whose statement is returned.
#[track_caller]
fn attestations(files: &LayoutFiles, index: &Value) -> Vec<Attestation> {
    let mut found = Vec::new();
    for entry in array_at(index, "manifests")
        .iter()
        .filter(|e| is_attestation(e))
    {
        assert_eq!(entry["mediaType"], MT_MANIFEST, "{entry}");
        assert_eq!(
            entry["platform"],
            json!({"architecture": "unknown", "os": "unknown"})
        );
        let manifest = files.blob_json(str_at(entry, "digest"));
        assert_eq!(manifest["mediaType"], MT_MANIFEST, "{manifest}");
        let layers = array_at(&manifest, "layers");
        assert_eq!(layers.len(), 1, "{manifest}");
        let layer = &layers[0];
        assert_eq!(layer["mediaType"], MT_IN_TOTO, "{manifest}");
        assert_eq!(
            layer["annotations"]["in-toto.io/predicate-type"],
            "https://slsa.dev/provenance/v1"
        );
        let artifact = manifest.get("artifactType").is_some();
        check_form(files, index, entry, &manifest, artifact);
        let statement = parse_json("the in-toto statement", files.blob(str_at(layer, "digest")));
        found.push(Attestation {
            entry: entry.clone(),
            statement,
        });
    }
    found
}

/// Checks an in-toto Statement v1 with an SLSA provenance v1 predicate
/// about `manifest_digest`, and returns its predicate.
#[track_caller]
fn check_statement(statement: &Value, manifest_digest: &str, subject_name: &str) -> Value {
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let subject = array_at(statement, "subject");
    assert_eq!(
        subject,
        &vec![json!({"name": subject_name, "digest": {"sha256": digest_hex(manifest_digest)}})]
    );
    let predicate = &statement["predicate"];
    assert_eq!(
        predicate["buildDefinition"]["buildType"],
        "https://mobyproject.org/buildkit@v1"
    );
    let run = &predicate["runDetails"];
    assert_eq!(run["builder"]["id"], "outport", "{run}");
    assert_eq!(run["metadata"]["startedOn"], EPOCH_TIME, "{run}");
    assert_eq!(run["metadata"]["finishedOn"], EPOCH_TIME, "{run}");
    assert!(!str_at(&run["metadata"], "invocationID").is_empty());
    predicate.clone()
}

#[test]
fn one_attestation_per_platform_as_buildkit_lays_them_out() {
    let tmp = tempdir();
    let sources = sources_file(tmp.path());
    let out = mkdir(tmp.path(), "out");
    let tarball = out.join("image.tar");
    let plain = out.join("plain");
    let metadata = out.join("metadata.json");
    let metadata_arg = path_str(&metadata).to_owned();
    let max_args = [
        "--build-sources",
        &sources,
        "--attr",
        "build-arg:VERSION=1.2",
        "--attr",
        "build-arg:URL=https://u:pr0v-attr-pass@example.com/x",
        "--attr",
        "filename=Dockerfile",
        "--attest",
        "type=provenance,mode=max",
    ];
    let attested = run(
        &sample_image(),
        &[max_args.as_slice(), &["--metadata-file", &metadata_arg]].concat(),
        &[
            format!("type=oci,dest={},name={NAME},id=max", path_str(&tarball)),
            format!("type=oci,tar=false,attest=false,dest={}", path_str(&plain)),
        ],
    );
    attested.assert_success();
    assert_metadata_valid(&metadata);

    let files = LayoutFiles::from_tar(&tarball);
    files.verify();
    let index = image_index(&files);
    let entries = array_at(&index, "manifests");
    // The image manifests first, then one attestation per platform.
    assert_eq!(entries.len(), 4, "{index}");
    assert!(entries[..2].iter().all(|e| !is_attestation(e)), "{index}");
    let found = attestations(&files, &index);
    assert_eq!(found.len(), 2, "{index}");
    assert_each_platform_attested(&files, &index, &found);
    // One invocation for the whole run.
    assert_eq!(
        found[0].statement["predicate"]["runDetails"]["metadata"]["invocationID"],
        found[1].statement["predicate"]["runDetails"]["metadata"]["invocationID"]
    );
    // Layers are the input's, untouched.
    let input = LayoutFiles::from_dir(&sample_image());
    for arch in ["amd64", "arm64"] {
        assert_eq!(
            files.manifest(arch)["layers"],
            input.manifest(arch)["layers"]
        );
    }

    // The exporter's response names the attested index.
    let doc = read_json(&metadata);
    assert_eq!(
        exporter_entry(&doc, "max")["response"]["containerimage.digest"],
        files.root()["digest"]
    );

    assert_skopeo_reads_them(tmp.path(), &tarball, &found);

    // attest=false in the same run: no attestation, build info still there.
    let plain_files = LayoutFiles::from_dir(&plain);
    assert!(attestations(&plain_files, &image_index(&plain_files)).is_empty());
    assert_eq!(array_at(&image_index(&plain_files), "manifests").len(), 2);

    // No credential anywhere.
    assert_no_secrets("the tarball", &fs::read(&tarball).unwrap());
    for (path, bytes) in &plain_files.files {
        assert_no_secrets(path, bytes);
    }
    assert_no_secrets("the metadata file", &fs::read(&metadata).unwrap());
    assert_no_secrets("stdout", &attested.stdout);
    assert_no_secrets("stderr", attested.stderr.as_bytes());

    assert_reproducible_and_replaced(&out, &max_args, &files);
}

/// Each platform's image manifest has exactly one attestation, whose
/// statement is mode=max's (every argument, credentials stripped) and whose
/// dependencies are the build info's sources, one for one.
fn assert_each_platform_attested(files: &LayoutFiles, index: &Value, found: &[Attestation]) {
    for (arch, platform) in [("amd64", "linux%2Famd64"), ("arm64", "linux%2Farm64%2Fv8")] {
        let manifest = files.manifest_descriptor(arch);
        let digest = str_at(&manifest, "digest");
        let mine: Vec<&Attestation> = found
            .iter()
            .filter(|a| a.entry["annotations"]["vnd.docker.reference.digest"] == digest)
            .collect();
        assert_eq!(mine.len(), 1, "one attestation for {arch}: {index}");
        let predicate = check_statement(
            &mine[0].statement,
            digest,
            &format!("pkg:docker/example.com/team/app@1.0?platform={platform}"),
        );
        let definition = &predicate["buildDefinition"];
        assert_eq!(
            definition["resolvedDependencies"],
            expected_dependencies(),
            "{arch}"
        );
        // mode=max: every argument (credentials stripped).
        assert_eq!(
            definition["externalParameters"]["request"]["args"],
            json!({
                "build-arg:URL": "https://example.com/x",
                "build-arg:VERSION": "1.2",
                "filename": "Dockerfile",
            })
        );
        // Its dependencies are the build info's sources, one for one.
        let config = files.blob_json(str_at(&files.manifest(arch)["config"], "digest"));
        let info: Value = parse_json(
            "build info",
            &base64_decode(str_at(&config, "moby.buildkit.buildinfo.v0")),
        );
        assert_eq!(
            array_at(&info, "sources").len(),
            array_at(definition, "resolvedDependencies").len()
        );
    }
}

/// skopeo lists the attestations in the raw index and copies every
/// instance of `tarball`.
fn assert_skopeo_reads_them(tmp: &Path, tarball: &Path, found: &[Attestation]) {
    // skopeo lists them in the raw index and copies every instance.
    let raw = skopeo_json(&["inspect", "--raw", &oci_archive(tarball)]);
    let listed: Vec<&Value> = array_at(&raw, "manifests")
        .iter()
        .filter(|e| is_attestation(e))
        .collect();
    assert_eq!(listed.len(), 2, "{raw}");
    for a in found {
        assert!(
            listed.iter().any(|e| e["digest"] == a.entry["digest"]),
            "{raw}"
        );
    }
    let copy = tmp.join("copy");
    skopeo_copy_all(&oci_archive(tarball), &oci_dir(&copy));
    let copied = LayoutFiles::from_dir(&copy);
    for a in found {
        copied.blob(str_at(&a.entry, "digest"));
    }
}

/// With SOURCE_DATE_EPOCH, the same run (`max_args`) gives the same bytes
/// as `files`; attesting the attested image again replaces its provenance
/// instead of adding a second one.
fn assert_reproducible_and_replaced(out: &Path, max_args: &[&str], files: &LayoutFiles) {
    // With SOURCE_DATE_EPOCH, the same run gives the same bytes.
    let again = out.join("again.tar");
    run(
        &sample_image(),
        max_args,
        &[format!("type=oci,dest={},name={NAME}", path_str(&again))],
    )
    .assert_success();
    assert_eq!(LayoutFiles::from_tar(&again).root(), files.root());

    // Attesting the attested image again replaces its provenance (the same
    // bytes here) instead of adding a second one.
    let twice = out.join("twice.tar");
    run(
        &again,
        max_args,
        &[format!("type=oci,dest={},name={NAME}", path_str(&twice))],
    )
    .assert_success();
    let twice = LayoutFiles::from_tar(&twice);
    assert_eq!(attestations(&twice, &image_index(&twice)).len(), 2);
    assert_eq!(twice.root(), files.root());
}

#[test]
fn mode_min_leaves_out_build_arguments_and_no_attest_changes_nothing() {
    let tmp = tempdir();
    let sources = sources_file(tmp.path());
    let out = mkdir(tmp.path(), "out");
    let extra = |attest: &[&'static str]| {
        let mut v = vec![
            "--build-sources",
            sources.as_str(),
            "--attr",
            "build-arg:VERSION=1.2",
            "--attr",
            "label:team=x",
            "--attr",
            "filename=Dockerfile",
        ];
        v.extend_from_slice(attest);
        v
    };
    let min = out.join("min");
    let off = out.join("off");
    run(
        &sample_image(),
        &extra(&["--attest", "provenance"]),
        &[
            format!("type=oci,tar=false,dest={}", path_str(&min)),
            format!("type=oci,tar=false,attest=false,dest={}", path_str(&off)),
        ],
    )
    .assert_success();
    let files = LayoutFiles::from_dir(&min);
    files.verify();
    let found = attestations(&files, &image_index(&files));
    assert_eq!(found.len(), 2);
    for a in &found {
        let subject = str_at(&a.entry["annotations"], "vnd.docker.reference.digest");
        // Without name=, the subject is named `_`, as BuildKit names it.
        let predicate = check_statement(&a.statement, subject, "_");
        assert_eq!(
            predicate["buildDefinition"]["externalParameters"]["request"],
            json!({"args": {"filename": "Dockerfile"}})
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"],
            expected_dependencies()
        );
    }

    // Without --attest: the image as attest=false gave it, no attestation.
    let none = out.join("none");
    run(
        &sample_image(),
        &extra(&[]),
        &[format!("type=oci,tar=false,dest={}", path_str(&none))],
    )
    .assert_success();
    let none_files = LayoutFiles::from_dir(&none);
    assert_eq!(none_files.root(), LayoutFiles::from_dir(&off).root());
    assert!(
        array_at(&image_index(&none_files), "manifests")
            .iter()
            .all(|e| !is_attestation(e))
    );
    // And without anything asked, the sample as it is.
    let bare = out.join("bare");
    run(
        &sample_image(),
        &[],
        &[format!("type=oci,tar=false,dest={}", path_str(&bare))],
    )
    .assert_success();
    assert_eq!(
        LayoutFiles::from_dir(&bare).root()["digest"],
        LayoutFiles::from_dir(&sample_image()).root()["digest"]
    );
}

#[test]
fn a_single_platform_image_becomes_an_index_with_its_attestation() {
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "arm64", "v1");
    let out = mkdir(tmp.path(), "out");
    let dest = out.join("layout");
    run(
        &input,
        &[
            "--attest",
            "provenance",
            "--build-sources",
            &sources_file(tmp.path()),
        ],
        &[format!(
            "type=oci,tar=false,dest={},name=app:v1",
            path_str(&dest)
        )],
    )
    .assert_success();
    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    let root = files.root();
    assert_eq!(root["mediaType"], MT_INDEX, "{root}");
    let index = image_index(&files);
    let entries = array_at(&index, "manifests");
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(
        entries[0]["platform"],
        json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
    let found = attestations(&files, &index);
    assert_eq!(found.len(), 1);
    let manifest_digest = str_at(&entries[0], "digest");
    assert_eq!(
        found[0].entry["annotations"]["vnd.docker.reference.digest"],
        manifest_digest
    );
    check_statement(
        &found[0].statement,
        manifest_digest,
        "pkg:docker/app@v1?platform=linux%2Farm64%2Fv8",
    );
    // skopeo reads the index and copies both manifests.
    let raw = skopeo_json(&["inspect", "--raw", &oci_dir(&dest)]);
    assert_eq!(array_at(&raw, "manifests").len(), 2, "{raw}");
    skopeo_copy_all(&oci_dir(&dest), &oci_dir(&tmp.path().join("copy")));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}
