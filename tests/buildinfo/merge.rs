//! A build info already in the input's config (as BuildKit v0.10 wrote
//! it) is merged with the run's, without duplicates, credentials removed;
//! exporting the output again changes nothing.

use super::*;

/// Plants what BuildKit v0.10 wrote in the config of the single-platform
/// layout `input`: frontend, attrs, deps, `docker-image` sources, a short
/// image name, a credential.
fn plant_existing_build_info(input: &Path) {
    let layout = Layout::open(input);
    let config_digest = str_at(&root_manifest(&layout.files())["config"], "digest").to_owned();
    let existing = json!({
        "frontend": "dockerfile.v0",
        "attrs": {"build-arg:VERSION": "1.2", "context": "https://x:old-input-t0ken@github.com/example/app.git"},
        "sources": [
            {"type": "docker-image", "ref": "alpine:3.19", "pin": "sha256:1d30"},
            {"type": "git", "ref": "https://old-input-t0ken@github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
        ],
        "deps": {"base": {"sources": [{"type": "http", "ref": "https://h/f?access_token=old-input-t0ken", "pin": "sha256:99"}]}}
    });
    layout.rewrite_json_blob(&config_digest, |c| {
        c[KEY] = json!(b64(&existing));
    });
}

/// The sources of the run: the planted ones in their new form, and a new
/// one.
fn new_sources(dir: &Path) -> PathBuf {
    let sources = dir.join("sources.json");
    fs::write(
        &sources,
        json!([
            {"type": "image", "ref": "docker.io/library/alpine:3.19", "pin": "sha256:1d30"},
            {"type": "git", "ref": "https://github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
            {"type": "http", "ref": "https://example.com/new.txt", "pin": "sha256:42"}
        ])
        .to_string(),
    )
    .unwrap();
    sources
}

/// The merged build info without and with `buildinfo-attrs=true`: sources
/// not repeated, credentials gone.
fn merged() -> (Value, Value) {
    let want_sources = json!([
        {"type": "image", "ref": "docker.io/library/alpine:3.19", "pin": "sha256:1d30"},
        {"type": "http", "ref": "https://example.com/new.txt", "pin": "sha256:42"},
        {"type": "git", "ref": "https://github.com/example/app.git#main", "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
    ]);
    let want_deps =
        json!({"base": {"sources": [{"type": "http", "ref": "https://h/f", "pin": "sha256:99"}]}});
    let want = json!({"frontend": "dockerfile.v0", "sources": want_sources, "deps": want_deps});
    let want_attrs = json!({
        "frontend": "dockerfile.v0",
        "attrs": {
            "build-arg:TOKEN_URL": "https://example.com/x",
            "build-arg:VERSION": "1.3",
            "context": "https://github.com/example/app.git",
        },
        "sources": want_sources,
        "deps": want_deps,
    });

    (want, want_attrs)
}

/// Checks output `id` at `dest`: its config's build info and its response
/// key are `want`, and no secret is anywhere.
fn assert_merged(dest: &Path, id: &str, want: &Value, doc: &Value) {
    let files = LayoutFiles::from_tar(dest);
    files.verify();
    let manifest = root_manifest(&files);
    let config = files.blob_json(str_at(&manifest["config"], "digest"));
    assert_eq!(&decode(config[KEY].as_str().unwrap()), want, "{id}");
    // A single-platform image: one key, no platform suffix.
    let response = &exporter_entry(doc, id)["response"];
    assert_eq!(
        &response["containerimage.buildinfo"], want,
        "{id}: {response}"
    );
    assert_eq!(
        response["containerimage.config.digest"], manifest["config"]["digest"],
        "{id}"
    );
    assert_no_secrets("the tarball", &fs::read(dest).unwrap());
    assert_no_secrets("the build info", config[KEY].to_string().as_bytes());
    assert_no_secrets(
        "the build info",
        decode(config[KEY].as_str().unwrap()).to_string().as_bytes(),
    );
}

#[test]
fn existing_build_info_is_merged_without_duplicates() {
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "amd64", "v1");
    plant_existing_build_info(&input);
    let sources = new_sources(tmp.path());
    let out = mkdir(tmp.path(), "out");
    let first = out.join("first.tar");
    let with_attrs = out.join("attrs.tar");
    let metadata = out.join("metadata.json");
    let run = outport(export_args(
        &input,
        &[
            "--build-sources",
            path_str(&sources),
            "--attr",
            "build-arg:TOKEN_URL=https://u:attr-t0ken@example.com/x",
            "--attr",
            "build-arg:VERSION=1.3",
        ],
        &[
            format!("type=oci,dest={},id=first", path_str(&first)),
            format!(
                "type=oci,buildinfo-attrs=true,dest={},id=attrs",
                path_str(&with_attrs)
            ),
        ],
        &metadata,
    ));
    run.assert_success();

    let (want, want_attrs) = merged();
    let doc = read_json(&metadata);
    for (dest, id, want) in [
        (&first, "first", &want),
        (&with_attrs, "attrs", &want_attrs),
    ] {
        assert_merged(dest, id, want, &doc);
    }
    assert_no_secrets("the metadata file", &fs::read(&metadata).unwrap());

    // Exporting the output again with the same sources changes nothing.
    let again = out.join("again");
    let run = outport(export_args(
        &first,
        &["--build-sources", path_str(&sources)],
        &[format!("type=oci,tar=false,dest={}", path_str(&again))],
        &out.join("metadata2.json"),
    ));
    run.assert_success();
    assert_eq!(
        LayoutFiles::from_dir(&again).root()["digest"],
        LayoutFiles::from_tar(&first).root()["digest"]
    );
}
