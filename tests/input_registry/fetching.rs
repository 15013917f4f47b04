//! Layers fetched as instances read them: one platform's only, each once
//! however many instances read it; a dropped download resumed (`Range`)
//! or restarted, and one that keeps dropping a one-line error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{pull_one, push_sample};
use crate::common::blob_relay::CutBlobs;
use crate::common::relay::BlobGets;
use crate::common::*;
use crate::export_registry::{registry, unique_repo};
use crate::export_rootfs::{crafted, file, layer_tar};

/// The digests of the config and layers of each manifest of the index at
/// `reference`, by platform (`os/arch`).
fn blobs_by_platform(reference: &str) -> Vec<(String, Vec<String>)> {
    let raw = |r: &str| {
        parse_json(
            "manifest",
            skopeo(&[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{r}"),
            ])
            .as_bytes(),
        )
    };
    let index = raw(reference);
    let repo = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
    array_at(&index, "manifests")
        .iter()
        .map(|entry| {
            let platform = format!(
                "{}/{}",
                str_at(&entry["platform"], "os"),
                str_at(&entry["platform"], "architecture")
            );
            let manifest = raw(&format!("{repo}@{}", str_at(entry, "digest")));
            let mut blobs = vec![str_at(&manifest["config"], "digest").to_owned()];
            for layer in array_at(&manifest, "layers") {
                blobs.push(str_at(layer, "digest").to_owned());
            }
            (platform, blobs)
        })
        .collect()
}

/// The store's file for `digest` under cache directory `cache`.
fn stored(cache: &Path, digest: &str) -> PathBuf {
    cache.join("blobs/blobs/sha256").join(digest_hex(digest))
}

/// `outport export docker://VIA --src-insecure` with `outputs`, `cache`
/// as the cache directory and an empty docker config in `tmp/config`.
fn export_via(tmp: &Path, via: &str, cache: &Path, outputs: &[String]) -> Run {
    let mut args = vec![
        "export".to_owned(),
        format!("docker://{via}"),
        "--src-insecure".into(),
    ];
    for spec in outputs {
        args.extend(["--output".to_owned(), spec.clone()]);
    }
    let config = mkdir(tmp, "config");
    outport_with_cache(&args, cache, &[("DOCKER_CONFIG", path_str(&config))])
}

#[test]
fn layers_are_fetched_when_read_and_once() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let reference = format!("{host}/{}:1", unique_repo("lazy"));
    push_sample(&reference);
    let platforms = blobs_by_platform(&reference);
    let blobs_of = |platform: &str| {
        let found = platforms.iter().find(|(p, _)| p == platform);
        found.expect("the sample's platforms").1.clone()
    };
    let (arm, amd) = (blobs_of("linux/arm64"), blobs_of("linux/amd64"));
    // The layers of amd64 that arm64 does not have (the first blob of
    // each is its config).
    let amd_only: Vec<&String> = amd[1..].iter().filter(|d| !arm.contains(d)).collect();
    assert!(
        !amd_only.is_empty(),
        "the sample's platforms share every layer"
    );

    // One `docker` output of one platform: every config (the index is
    // read whole), that platform's layers only.
    let relay = BlobGets::start(&host);
    let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
    let one = mkdir(tmp.path(), "one");
    let cache = mkdir(&one, "cache");
    let dest = one.join("arm.tar");
    let spec = format!(
        "type=docker,platform=linux/arm64,name=app:1,dest={}",
        path_str(&dest)
    );
    let run = export_via(&one, &via, &cache, &[spec]);
    run.assert_success();
    let wanted: BTreeSet<&String> = platforms.iter().map(|(_, b)| &b[0]).chain(&arm).collect();
    assert_eq!(relay.blob_gets(), wanted.len(), "{}", run.describe());
    for digest in &amd_only {
        assert!(!stored(&cache, digest).exists(), "{digest} was fetched");
    }
    for digest in &arm {
        assert!(stored(&cache, digest).exists(), "{digest} is not stored");
    }

    // Four instances reading the layers at once: each blob fetched once.
    let relay = BlobGets::start(&host);
    let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
    let all = mkdir(tmp.path(), "all");
    let cache = mkdir(&all, "cache");
    let at = |name: &str| path_str(&all.join(name)).to_owned();
    let outputs = [
        format!("type=oci,dest={}", at("oci.tar")),
        format!("type=docker,name=app:1,dest={}", at("docker.tar")),
        format!("type=tar,dest={}", at("rootfs.tar")),
        format!("type=local,dest={}", at("local")),
    ];
    let run = export_via(&all, &via, &cache, &outputs);
    run.assert_success();
    let every: BTreeSet<&String> = platforms.iter().flat_map(|(_, b)| b).collect();
    assert_eq!(relay.blob_gets(), every.len(), "{}", run.describe());
}

/// Pushes an image with a layer of about `len` bytes of its own to a new
/// repository; its reference and the layout pushed.
pub(super) fn push_big(tmp: &Path, test: &str, len: usize) -> (String, PathBuf) {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let reference = format!("{host}/{}:1", unique_repo(test));
    let mut data = noise(len);
    data.extend_from_slice(reference.as_bytes());
    let input = crafted(tmp, &[layer_tar(&[file("big.bin", &data)])]);
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &oci_dir(&input),
        &format!("docker://{reference}"),
    ]);
    (reference, input)
}

#[test]
fn a_dropped_download_is_resumed_or_restarted() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let (reference, input) = push_big(tmp.path(), "resume", 512 << 10);
    let expected = tmp.path().join("expected.tar");
    outport([
        "export",
        &oci_dir(&input),
        "--output",
        &format!("type=oci,dest={}", path_str(&expected)),
    ])
    .assert_success();
    // The registry answers ranges (206): the download goes on from where
    // it broke; without them (200) the blob comes again whole.
    for ranges in [true, false] {
        let relay = CutBlobs::start(&host, 1, 128 << 10, ranges);
        let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
        let dir = mkdir(tmp.path(), &format!("ranges-{ranges}"));
        let (run, dest) = pull_one(&dir, &via, &["--src-insecure"]);
        run.assert_success();
        assert_eq!(relay.cut(), 1, "{}", run.describe());
        assert!(relay.ranged() >= 1, "no request from the byte it broke at");
        assert!(
            std::fs::read(&dest).expect("read") == std::fs::read(&expected).expect("read"),
            "ranges {ranges}: the export differs"
        );
    }
}

#[test]
fn a_download_that_keeps_dropping_is_one_line_and_nothing_written() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let (reference, _) = push_big(tmp.path(), "always-cut", 256 << 10);
    let relay = CutBlobs::start(&host, usize::MAX, 64 << 10, true);
    let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
    let (run, dest) = pull_one(tmp.path(), &via, &["--src-insecure"]);
    run.assert_code(1);
    let error = run.error_text();
    assert!(
        error.lines().count() == 1
            && error.contains(&format!("registry 127.0.0.1:{}", relay.port))
            && error.contains("/blobs/sha256:")
            && error.contains("the download broke after")
            && error.contains("4 attempts"),
        "{error}"
    );
    assert_eq!(relay.cut(), 4, "{}", run.describe());
    assert!(!dest.exists(), "an output was written");
    let left = std::fs::read_dir(tmp.path().join("cache/blobs/tmp"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "a partial download was left in the store");
}
