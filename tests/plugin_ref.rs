//! Plugins by OCI reference, against Debian's `docker-registry` started by
//! `scripts/test` (`scripts/test-services`): `outport exporter push`
//! publishes the hello exporter as a Wasm OCI artifact (media types checked
//! with skopeo), `type=wasm,ref=…` pulls, runs and caches it, under the same
//! pinning as `component=PATH`; unknown tags and digests, and a blob whose
//! bytes do not match its digest, are clear errors with nothing cached.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::authors::hello_component;
use crate::common::*;
use crate::export_registry::{docker_config, registry, skopeo_insecure, unique_repo};

const MT_WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const MT_WASM_LAYER: &str = "application/wasm";

/// One test's registry, temporary directory, component cache (kept across
/// the test's runs) and empty docker config.
struct Ctx {
    host: String,
    tmp: tempfile::TempDir,
    cache: PathBuf,
    docker: PathBuf,
}

impl Ctx {
    fn new() -> Ctx {
        let host = registry("OUTPORT_TEST_REGISTRY");
        let tmp = tempdir();
        let cache = mkdir(tmp.path(), "cache");
        let docker = docker_config(tmp.path(), &serde_json::json!({}));
        Ctx {
            host,
            tmp,
            cache,
            docker,
        }
    }

    /// A reference in a repository of its own.
    fn reference(&self, test: &str, tag: &str) -> String {
        format!("{}/{}:{tag}", self.host, unique_repo(test))
    }

    fn outport(&self, args: &[&str]) -> Run {
        outport_with_cache(
            args,
            &self.cache,
            &[("DOCKER_CONFIG", path_str(&self.docker))],
        )
    }

    /// `outport exporter push COMPONENT REFERENCE --insecure`, which must
    /// succeed; the manifest digest it prints.
    fn push(&self, component: &Path, reference: &str) -> String {
        let run = self.outport(&[
            "exporter",
            "push",
            path_str(component),
            reference,
            "--insecure",
        ]);
        run.assert_success();
        run.stdout_text().trim().to_string()
    }

    /// Exports the sample to `dest` with the component of `reference`.
    fn export(&self, reference: &str, dest: &Path, extra: &[&str]) -> Run {
        let spec = format!(
            "type=wasm,ref={reference},registry.insecure=true,dest={}",
            path_str(dest)
        );
        let sample = sample_image();
        let mut args = vec![
            "export",
            path_str(&sample),
            "--output",
            &spec,
            "--progress",
            "plain",
        ];
        args.extend_from_slice(extra);
        self.outport(&args)
    }

    /// The cached components' file names (none when nothing was cached).
    fn cached(&self) -> Vec<String> {
        let dir = self.cache.join("pulled/sha256");
        if dir.exists() {
            dir_names(&dir)
        } else {
            Vec::new()
        }
    }
}

/// The hello exporter's bytes and digest.
fn hello() -> (Vec<u8>, String) {
    let bytes = fs::read(hello_component()).expect("read the hello component");
    let digest = sha256_digest(&bytes);
    (bytes, digest)
}

#[test]
fn pushes_an_artifact_then_runs_it_by_ref_and_caches_it() {
    let ctx = Ctx::new();
    let (bytes, digest) = hello();
    let reference = ctx.reference("hello", "1.0");
    let manifest_digest = ctx.push(hello_component(), &reference);

    let raw = skopeo_insecure(&["inspect", "--raw", &format!("docker://{reference}")]);
    assert_eq!(sha256_digest(raw.as_bytes()), manifest_digest);
    let manifest = parse_json("manifest", raw.as_bytes());
    assert_eq!(str_at(&manifest, "mediaType"), MT_MANIFEST);
    assert_eq!(str_at(&manifest["config"], "mediaType"), MT_WASM_CONFIG);
    let layers = array_at(&manifest, "layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(str_at(&layers[0], "mediaType"), MT_WASM_LAYER);
    assert_eq!(str_at(&layers[0], "digest"), digest);
    assert_eq!(layers[0]["size"].as_u64(), Some(bytes.len() as u64));
    let config = skopeo_insecure(&[
        "inspect",
        "--raw",
        "--config",
        &format!("docker://{reference}"),
    ]);
    let config = parse_json("config", config.as_bytes());
    assert_eq!(str_at(&config, "architecture"), "wasm");
    assert_eq!(str_at(&config, "os"), "wasip2");
    assert_eq!(config["layerDigests"], serde_json::json!([digest]));
    let exports: Vec<&str> = array_at(&config["component"], "exports")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in ["describe", "validate", "export"] {
        assert!(exports.contains(&name), "{config}");
    }
    assert!(
        array_at(&config["component"], "imports").iter().any(|i| i
            .as_str()
            .is_some_and(|i| i.starts_with("outport:exporter/image"))),
        "{config}"
    );

    let dest = ctx.tmp.path().join("summary.json");
    let run = ctx.export(&reference, &dest, &[]);
    run.assert_success();
    assert!(read_json(&dest)["totalSize"].as_u64().is_some());
    assert!(
        run.stderr.contains(&format!("pulled component {digest}")),
        "{}",
        run.describe()
    );
    assert_eq!(ctx.cached(), vec![format!("{}.wasm", digest_hex(&digest))]);

    // Again, by manifest digest: the manifest is asked for, the blob is not.
    let by_digest = reference.replace(":1.0", &format!("@{manifest_digest}"));
    let dest = ctx.tmp.path().join("again.json");
    let run = ctx.export(&by_digest, &dest, &[]);
    run.assert_success();
    assert!(
        run.stderr.contains("from the cache (no download)"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("pulled component"),
        "{}",
        run.describe()
    );
    assert!(dest.is_file());
}

#[test]
fn pinning_applies_to_components_pulled_by_ref() {
    let ctx = Ctx::new();
    let (_, digest) = hello();
    let reference = ctx.reference("pinned", "1");
    ctx.push(hello_component(), &reference);
    let policy = ctx.tmp.path().join("policy.toml");
    let dest = ctx.tmp.path().join("summary.json");
    let args = ["--policy", path_str(&policy)];

    fs::write(&policy, "allow-unpinned = false\n").unwrap();
    let run = ctx.export(&reference, &dest, &args);
    run.assert_code(2);
    run.assert_error(&[&digest], &["not pinned"]);
    assert!(run.error_text().contains(&reference), "{}", run.describe());
    assert!(!dest.exists());

    let other = sha256_digest(b"another component");
    fs::write(
        &policy,
        format!("allow-unpinned = false\n[components.\"{other}\"]\n"),
    )
    .unwrap();
    let run = ctx.export(&reference, &dest, &args);
    run.assert_code(2);
    run.assert_error(&[&digest], &["not pinned"]);
    assert!(!dest.exists());

    fs::write(
        &policy,
        format!("allow-unpinned = false\n[components.\"{digest}\"]\n"),
    )
    .unwrap();
    ctx.export(&reference, &dest, &args).assert_success();
    assert!(read_json(&dest)["totalSize"].as_u64().is_some());
}

#[test]
fn unknown_tags_and_digests_are_clear_errors() {
    let ctx = Ctx::new();
    let reference = ctx.reference("missing", "1.0");
    ctx.push(hello_component(), &reference);
    let dest = ctx.tmp.path().join("summary.json");

    let absent_tag = reference.replace(":1.0", ":2.0");
    let run = ctx.export(&absent_tag, &dest, &[]);
    run.assert_code(2);
    run.assert_error(&[&absent_tag], &["not found"]);

    let wrong = reference.replace(":1.0", &format!("@sha256:{}", "0".repeat(64)));
    let run = ctx.export(&wrong, &dest, &[]);
    run.assert_code(2);
    run.assert_error(&[&wrong], &["not found"]);

    let run = ctx.export("no-registry/hello:1.0", &dest, &[]);
    run.assert_code(2);
    run.assert_error(&["no-registry/hello:1.0"], &["registry must be named"]);

    assert!(!dest.exists());
    assert!(ctx.cached().is_empty());
}

/// `bytes` with a custom section `name` holding `payload` appended (still
/// a valid component, with a digest of its own).
fn with_custom_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut section = vec![u8::try_from(name.len()).expect("short name")];
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0);
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&section);
    out
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_not_cached() {
    let ctx = Ctx::new();
    let storage = registry("OUTPORT_TEST_REGISTRY_STORAGE");
    let reference = ctx.reference("tampered", "1");
    // A component no other test pushes, so its blob is this test's alone.
    let (bytes, _) = hello();
    let unique = with_custom_section(&bytes, "outport-test", reference.as_bytes());
    let component = ctx.tmp.path().join("unique.wasm");
    fs::write(&component, &unique).unwrap();
    let digest = sha256_digest(&unique);
    ctx.push(&component, &reference);

    // The registry serves what its storage holds: change one byte there.
    let hex = digest_hex(&digest);
    let data = Path::new(&storage)
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut stored = fs::read(&data).expect("the pushed blob in the registry's storage");
    assert_eq!(stored, unique);
    if let Some(last) = stored.last_mut() {
        *last ^= 0xff;
    }
    fs::write(&data, &stored).unwrap();

    let dest = ctx.tmp.path().join("summary.json");
    let run = ctx.export(&reference, &dest, &[]);
    run.assert_code(2);
    run.assert_error(&[&digest], &["does not match its digest"]);
    assert!(run.error_text().contains(&reference), "{}", run.describe());
    assert!(!dest.exists());
    assert!(ctx.cached().is_empty(), "{:?}", ctx.cached());
}

#[test]
fn malformed_ref_options_are_usage_errors() {
    let tmp = tempdir();
    let dest = tmp.path().join("summary.json");
    let component = path_str(hello_component());
    for (spec, mentions, says) in [
        (
            format!("type=wasm,component={component},ref=127.0.0.1:1/x:1"),
            "ref=",
            "not both",
        ),
        (
            "type=wasm,ref=127.0.0.1:1/x:1,registry.insecure=maybe".to_string(),
            "registry.insecure",
            "expected true or false",
        ),
        (
            format!("type=wasm,component={component},registry.insecure=true"),
            "registry.insecure",
            "goes with ref=",
        ),
        (
            "type=wasm,ref=127.0.0.1:1/x".to_string(),
            "127.0.0.1:1/x",
            "a tag",
        ),
    ] {
        let spec = format!("{spec},dest={}", path_str(&dest));
        let run = outport(["export", path_str(&sample_image()), "--output", &spec]);
        run.assert_code(2);
        run.assert_error(&[mentions], &[says]);
        assert!(!dest.exists());
    }
}
