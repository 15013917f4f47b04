//! `docker://` inputs against the test registries: an image skopeo pushed
//! exports to every built-in exporter byte for byte as the same image from
//! an OCI layout; a second export downloads no blob (the blob store);
//! a missing tag or repository, nothing listening, no credentials, plain
//! HTTP without `--src-insecure`, a schema 1 manifest, a document that is
//! no manifest, a manifest or a blob whose bytes are not its digest are
//! one-line errors naming the registry and the request, with nothing
//! written.
//! Layers are fetched when read, at most four at once (`fetching.rs`,
//! `parallel.rs`); the blob store is capped (`store.rs`); redirects and
//! credentials (`trust.rs`); indexes in indexes (`nested.rs`).

mod fetching;
mod nested;
mod parallel;
mod store;
mod trust;

use std::path::Path;

use crate::common::relay::{BlobGets, Manifest};
use crate::common::*;
use crate::export_registry::{registry, unique_repo};

/// skopeo pushes the multi-platform sample to `reference`.
pub(crate) fn push_sample(reference: &str) {
    push_sample_as(reference, None);
}

/// skopeo pushes the multi-platform sample to `reference`, logged in as
/// `creds` (`user:password`) when given.
pub(crate) fn push_sample_as(reference: &str, creds: Option<&str>) {
    let creds = creds.map(|c| format!("--dest-creds={c}"));
    let mut args = vec![
        "--insecure-policy",
        "copy",
        "--all",
        "--quiet",
        "--dest-tls-verify=false",
    ];
    args.extend(creds.as_deref());
    let (from, to) = (oci_dir(&sample_image()), format!("docker://{reference}"));
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args);
}

/// Every built-in exporter, its destination under `dir`, for `tag`.
fn outputs(dir: &Path, host: &str, tag: &str) -> Vec<String> {
    let at = |name: &str| path_str(&dir.join(name)).to_owned();
    vec![
        format!("type=oci,dest={},id=oci", at("oci.tar")),
        format!("type=docker,dest={},name=app:1,id=docker", at("docker.tar")),
        format!("type=tar,dest={},id=tar", at("rootfs.tar")),
        format!("type=local,dest={},id=local", at("local")),
        format!(
            "type=registry,name={host}/{}:{tag},registry.insecure=true,id=push",
            unique_repo("copy")
        ),
    ]
}

/// `outport export INPUT` to [`outputs`] in `dir`, with `cache` as the
/// cache directory and `extra` arguments; the metadata.
fn export_all(input: &str, dir: &Path, cache: &Path, extra: &[&str]) -> (Run, serde_json::Value) {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let metadata = dir.join("metadata.json");
    let mut args: Vec<String> = vec!["export".into(), input.into()];
    for spec in outputs(dir, &host, "1") {
        args.extend(["--output".into(), spec]);
    }
    args.extend(["--metadata-file".into(), path_str(&metadata).into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let config = mkdir(dir, "docker-config");
    let run = outport_with_cache(&args, cache, &[("DOCKER_CONFIG", path_str(&config))]);
    let meta = if metadata.exists() {
        read_json(&metadata)
    } else {
        serde_json::Value::Null
    };
    (run, meta)
}

/// Every file under `dir` (relative path, mode, bytes or link target),
/// sorted.
fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            let content = if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path)
                    .expect("read_link")
                    .display()
                    .to_string()
                    .into_bytes()
            } else {
                std::fs::read(&path).expect("read")
            };
            out.push((rel, meta.mode(), content));
        }
    }
    out.sort();
    out
}

#[test]
fn exports_from_a_registry_as_from_a_layout_and_again_from_the_store() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let reference = format!("{host}/{}:1", unique_repo("pull"));
    push_sample(&reference);
    // The same image as skopeo pulls it into a layout.
    let layout = tmp.path().join("layout");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &oci_dir(&layout),
    ]);
    let cache = mkdir(tmp.path(), "cache");
    let from_layout = mkdir(tmp.path(), "from-layout");
    let (run, layout_meta) = export_all(&oci_dir(&layout), &from_layout, &cache, &[]);
    run.assert_success();
    let from_registry = mkdir(tmp.path(), "from-registry");
    let (run, registry_meta) = export_all(
        &format!("docker://{reference}"),
        &from_registry,
        &cache,
        &["--src-insecure"],
    );
    run.assert_success();
    for file in ["oci.tar", "docker.tar", "rootfs.tar"] {
        assert!(
            std::fs::read(from_layout.join(file)).expect("read")
                == std::fs::read(from_registry.join(file)).expect("read"),
            "{file} differs"
        );
    }
    assert!(tree(&from_layout.join("local")) == tree(&from_registry.join("local")));
    for id in ["oci", "docker", "tar", "local", "push"] {
        let digest = |meta: &serde_json::Value| {
            str_at(
                &exporter_entry(meta, id)["response"],
                "containerimage.digest",
            )
            .to_owned()
        };
        assert_eq!(digest(&layout_meta), digest(&registry_meta), "{id}");
    }

    // The metadata names the input: the normalised reference or the
    // argument, and the index both read.
    let listed = read_json(&layout.join("index.json"));
    let index = str_at(&array_at(&listed, "manifests")[0], "digest");
    assert_eq!(
        registry_meta["source"],
        serde_json::json!({"ref": reference, "digest": index})
    );
    assert_eq!(
        layout_meta["source"],
        serde_json::json!({"ref": oci_dir(&layout), "digest": index})
    );

    // Again, through a relay that counts blob downloads: none.
    let relay = BlobGets::start(&host);
    let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
    let again = mkdir(tmp.path(), "again");
    let (run, _) = export_all(
        &format!("docker://{via}"),
        &again,
        &cache,
        &["--src-insecure"],
    );
    run.assert_success();
    assert_eq!(relay.blob_gets(), 0, "{}", run.describe());
    assert!(relay.manifest_gets() > 0);
    assert!(
        std::fs::read(from_layout.join("oci.tar")).expect("read")
            == std::fs::read(again.join("oci.tar")).expect("read")
    );
}

/// `outport export docker://REFERENCE --output type=oci` with `extra`
/// arguments, a fresh cache and an empty docker config; the run and the
/// output's path.
pub(crate) fn pull_one(tmp: &Path, reference: &str, extra: &[&str]) -> (Run, std::path::PathBuf) {
    let dest = tmp.join("out.tar");
    let config = mkdir(tmp, "docker-config");
    let cache = mkdir(tmp, "cache");
    let mut args = vec![
        "export".to_owned(),
        format!("docker://{reference}"),
        "--output".into(),
        format!("type=oci,dest={}", path_str(&dest)),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = outport_with_cache(&args, &cache, &[("DOCKER_CONFIG", path_str(&config))]);
    (run, dest)
}

#[test]
fn registry_errors_are_one_line_naming_the_request() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let auth = registry("OUTPORT_TEST_REGISTRY_AUTH");
    let tmp = tempdir();
    let reference = format!("{host}/{}:1", unique_repo("pull-errors"));
    push_sample(&reference);
    let repo = reference.trim_end_matches(":1");
    let cases = [
        (format!("{repo}:nope"), "404 Not Found", "/manifests/nope"),
        (
            format!("{host}/outport-test/absent:1"),
            "MANIFEST_UNKNOWN",
            "/v2/outport-test/absent/manifests/1",
        ),
        (
            format!("{auth}/outport-test/any:1"),
            "401 Unauthorized",
            "/manifests/1",
        ),
        (
            "127.0.0.1:1/outport-test/any:1".to_owned(),
            "Connection refused",
            "/manifests/1",
        ),
    ];
    for (i, (reference, says, request)) in cases.iter().enumerate() {
        let dir = mkdir(tmp.path(), &format!("case-{i}"));
        let (run, dest) = pull_one(&dir, reference, &["--src-insecure"]);
        run.assert_code(1);
        let error = run.error_text();
        assert!(
            error.contains(says) && error.contains(request) && error.lines().count() == 1,
            "{reference}: {error}"
        );
        let registry = reference.split('/').next().unwrap_or_default();
        assert!(error.contains(&format!("registry {registry}")), "{error}");
        assert!(!dest.exists(), "{reference}: an output was written");
    }
    // HTTPS to a plain-HTTP registry without --src-insecure.
    let dir = mkdir(tmp.path(), "tls");
    let (run, dest) = pull_one(&dir, &reference, &[]);
    run.assert_code(1);
    run.assert_error(&[&host], &["--src-insecure"]);
    assert!(!dest.exists());
}

#[test]
fn schema_1_foreign_and_mismatched_documents_are_one_line_errors() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let schema1 = r#"{"schemaVersion":1,"name":"outport-test/old","tag":"1","architecture":"amd64","fsLayers":[{"blobSum":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],"history":[{"v1Compatibility":"{}"}]}"#;
    let cases = [
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
            "answered a docker schema 1 manifest, which is not read",
        ),
        (
            "application/json",
            r#"{"hello":"world"}"#,
            "answered a document of media type \"application/json\", not a manifest or index",
        ),
    ];
    for (i, (content_type, body, says)) in cases.into_iter().enumerate() {
        let relay = Manifest::start(&host, content_type, body);
        let via = format!("127.0.0.1:{}", relay.port);
        let dir = mkdir(tmp.path(), &format!("case-{i}"));
        let (run, dest) = pull_one(
            &dir,
            &format!("{via}/outport-test/old:1"),
            &["--src-insecure"],
        );
        run.assert_code(1);
        let error = run.error_text();
        assert!(
            error.lines().count() == 1
                && error.contains(&format!("registry {via}"))
                && error.contains("GET /v2/outport-test/old/manifests/1")
                && error.contains(says),
            "{content_type}: {error}"
        );
        assert!(!dest.exists(), "{content_type}: an output was written");
    }
    // A manifest asked for by digest whose bytes are another's.
    let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let relay = Manifest::start(&host, MT_MANIFEST, manifest);
    let via = format!("127.0.0.1:{}", relay.port);
    let asked = sha256_digest(b"another manifest");
    let dir = mkdir(tmp.path(), "by-digest");
    let reference = format!("{via}/outport-test/old@{asked}");
    let (run, dest) = pull_one(&dir, &reference, &["--src-insecure"]);
    run.assert_code(1);
    let error = run.error_text();
    assert!(
        error.lines().count() == 1
            && error.contains(&format!("GET /v2/outport-test/old/manifests/{asked}"))
            && error.contains(&format!(
                "answered bytes whose digest is {}, not {asked}",
                sha256_digest(manifest.as_bytes())
            )),
        "{error}"
    );
    assert!(!dest.exists(), "by digest: an output was written");
}

#[test]
fn a_blob_the_registry_serves_wrong_is_refused_and_not_stored() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let storage = registry("OUTPORT_TEST_REGISTRY_STORAGE");
    let tmp = tempdir();
    // An image with a layer of its own (no other run's), pushed by skopeo.
    let (reference, _) = fetching::push_big(tmp.path(), "corrupt", 64 << 10);
    let manifest = parse_json(
        "manifest",
        skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{reference}"),
        ])
        .as_bytes(),
    );
    let layers = array_at(&manifest, "layers");
    let digest = str_at(&layers[layers.len() - 1], "digest").to_owned();
    let hex = digest_hex(&digest);
    let data = Path::new(&storage).join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut bytes = std::fs::read(&data).expect("the registry's blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data, &bytes).expect("corrupt the blob");

    let (run, dest) = pull_one(tmp.path(), &reference, &["--src-insecure"]);
    run.assert_code(1);
    let error = run.error_text();
    assert!(
        error.contains(&format!("registry {host}"))
            && error.contains("GET /v2/")
            && error.contains(&digest)
            && error.contains("not the blob's"),
        "{error}"
    );
    assert!(!dest.exists());
    let stored = tmp.path().join("cache/blobs/blobs/sha256").join(hex);
    assert!(!stored.exists(), "a wrong blob was stored");
}
