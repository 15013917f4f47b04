//! The local cache backend (`--export-cache type=local`, `outport cache
//! export|import`): BuildKit's local cache layout, read back by skopeo and
//! umoci; caches derived from an image and read from a BuildKit-shaped
//! cache directory; round trips; blobs never rewritten; `reset`;
//! `ignore-error`; bad caches refused with nothing written.

use std::collections::BTreeSet;
use std::fs;

use serde_json::{Value, json};

use crate::common::*;

mod caches;
mod recompress;

pub(crate) use caches::*;

pub(crate) const MT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

#[test]
fn export_with_an_image_writes_a_cache_skopeo_and_umoci_read() {
    let tmp = tempdir();
    let image_out = tmp.path().join("image");
    let cache = tmp.path().join("cache");
    let metadata = tmp.path().join("metadata.json");
    let run = export_sample_with_caches(
        &format!("type=oci,tar=false,dest={}", path_str(&image_out)),
        &metadata,
        &[format!("type=local,dest={},id=c1", path_str(&cache))],
    );
    run.assert_success();

    // Read by tools nobody here wrote: the cache is an OCI layout whose
    // `latest` manifest has the cache config as its config.
    assert!(
        umoci(&["ls", "--layout", path_str(&cache)])
            .lines()
            .any(|l| l == "latest")
    );
    let manifest = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&cache, "latest")]);
    assert_eq!(manifest["config"]["mediaType"], MT_CACHE_CONFIG);
    let config = skopeo_json(&[
        "inspect",
        "--raw",
        "--config",
        &oci_dir_ref(&cache, "latest"),
    ]);
    let copy = tmp.path().join("copy");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &oci_dir_ref(&cache, "latest"),
        &oci_dir_ref(&copy, "latest"),
    ]);

    // The cache is the chain of the sample's layers, one per platform,
    // sharing their common base: every layer once, records linked in order,
    // and (mode=min, the default) results only on each chain's last record.
    let written = read_cache(&cache, "latest");
    assert_eq!(written.root_type, MT_MANIFEST);
    let mut layers = written.layers.clone();
    layers.sort();
    let mut expected = sample_layers();
    expected.sort();
    assert_eq!(layers, expected);
    let config_layers: Vec<&str> = array_at(&config, "layers")
        .iter()
        .map(|l| str_at(l, "blob"))
        .collect();
    assert_eq!(config_layers.len(), expected.len(), "{config}");
    let records = array_at(&config, "records");
    let with_results = records.iter().filter(|r| r.get("layers").is_some()).count();
    assert_eq!(with_results, 2, "one final record per platform: {config}");

    // The response goes to the metadata file's cache list, apart from the
    // exporters, and its keys stay out of the legacy flat map.
    assert_metadata_valid(&metadata);
    let doc = read_json(&metadata);
    let entry = &array_at(&doc, "cache")[0];
    assert_eq!(entry["id"], "c1");
    assert_eq!(entry["type"], "local");
    assert_eq!(entry["status"], "ok");
    let index = read_json(&cache.join("index.json"));
    assert_eq!(
        entry["response"]["cache.digest"],
        index["manifests"][0]["digest"]
    );
    assert!(doc.get("cache.digest").is_none());
    assert_eq!(exporter_entry(&doc, "0")["status"], "ok");
    assert!(image_out.join("index.json").is_file());
}

#[test]
fn mode_max_keeps_every_result_of_an_image_chain() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    cache_export(
        &sample_image(),
        &[format!("type=local,dest={},mode=max", path_str(&cache))],
    )
    .assert_success();
    let config = parse_json("cache config", &read_cache(&cache, "latest").config);
    let records = array_at(&config, "records");
    assert_eq!(records.len(), array_at(&config, "layers").len());
    assert!(
        records.iter().all(|r| r.get("layers").is_some()),
        "{config}"
    );
}

#[test]
fn export_from_a_buildkit_cache_keeps_it_and_min_drops_intermediate_results() {
    let tmp = tempdir();
    for image_manifest in [true, false] {
        let name = format!("bk-{image_manifest}");
        let bk = buildkit_cache(tmp.path(), &name, image_manifest);
        let max = tmp.path().join(format!("{name}-max"));
        let min = tmp.path().join(format!("{name}-min"));
        cache_export(
            &bk.dir,
            &[
                format!("type=local,dest={},mode=max", path_str(&max)),
                format!("type=local,dest={},mode=min", path_str(&min)),
            ],
        )
        .assert_success();

        let kept = read_cache(&max, "latest");
        assert_eq!(kept.config, bk.config, "mode=max keeps the config bytes");
        assert_eq!(kept.layers, bk.layers);
        skopeo(&["inspect", "--raw", &oci_dir_ref(&max, "latest")]);

        let reduced = read_cache(&min, "latest");
        assert_eq!(reduced.layers, bk.layers[..2].to_vec());
        assert!(
            !min.join("blobs/sha256")
                .join(digest_hex(&bk.layers[2]))
                .exists()
        );
        let config = parse_json("cache config", &reduced.config);
        let records = array_at(&config, "records");
        assert_eq!(records.len(), 3, "the keys stay, only results go: {config}");
        assert!(records[0].get("layers").is_none() && records[2].get("layers").is_none());
        assert_eq!(records[1]["layers"][0]["layer"], 1);
    }
}

#[test]
fn export_then_import_round_trips_byte_for_byte() {
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    // oci-mediatypes=false alone means the index form, as in BuildKit.
    let forms = ["", ",image-manifest=false", ",oci-mediatypes=false"];
    for (i, extra) in forms.iter().enumerate() {
        let stored = tmp.path().join(format!("stored-{i}"));
        let imported = tmp.path().join(format!("imported-{i}"));
        cache_export(
            &bk.dir,
            &[format!(
                "type=local,dest={},mode=max,tag=v1{extra}",
                path_str(&stored)
            )],
        )
        .assert_success();
        cache_import(
            &format!("type=local,src={},tag=v1", path_str(&stored)),
            &imported,
        )
        .assert_success();
        let before = read_cache(&stored, "v1");
        let after = read_cache(&imported, "v1");
        assert_eq!(after.config, bk.config);
        assert_eq!(after.config, before.config);
        assert_eq!(after.layers, before.layers);
        assert_eq!(after.root_type, before.root_type);
        if extra.contains("oci-mediatypes=false") {
            let list = "application/vnd.docker.distribution.manifest.list.v2+json";
            assert_eq!(before.root_type, list);
        }
        let stored_files = LayoutFiles::from_dir(&stored);
        let imported_files = LayoutFiles::from_dir(&imported);
        for digest in imported_files.blob_digests() {
            assert_eq!(
                imported_files.blob(&digest),
                stored_files.blob(&digest),
                "{digest}"
            );
        }
    }
}

#[test]
fn import_by_digest_and_a_missing_tag() {
    let tmp = tempdir();
    let stored = tmp.path().join("stored");
    cache_export(
        &sample_image(),
        &[format!("type=local,dest={},tag=a", path_str(&stored))],
    )
    .assert_success();
    let index = read_json(&stored.join("index.json"));
    let digest = str_at(&index["manifests"][0], "digest").to_owned();
    let imported = tmp.path().join("imported");
    cache_import(
        &format!("type=local,src={},digest={digest}", path_str(&stored)),
        &imported,
    )
    .assert_success();
    assert_eq!(
        read_json(&imported.join("index.json"))["manifests"][0]["digest"],
        digest.as_str()
    );

    let missing = tmp.path().join("missing");
    let run = cache_import(
        &format!("type=local,src={},tag=nope", path_str(&stored)),
        &missing,
    );
    run.assert_code(1);
    run.assert_error(&["nope"], &["no entry"]);
    assert_empty_or_absent(&missing);
}

#[test]
fn re_export_rewrites_no_blob_and_keeps_other_tags() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let spec = |tag: &str| format!("type=local,dest={},tag={tag}", path_str(&cache));
    cache_export(&sample_image(), &[spec("one")]).assert_success();
    let before = blob_stamps(&cache);
    cache_export(&sample_image(), &[spec("one")]).assert_success();
    assert_eq!(blob_stamps(&cache), before, "same inodes and mtimes");
    cache_export(&sample_image(), &[spec("two")]).assert_success();
    let after = blob_stamps(&cache);
    for stamp in &before {
        assert!(after.contains(stamp), "{stamp:?} was rewritten");
    }
    let index = read_json(&cache.join("index.json"));
    let tags: Vec<&str> = array_at(&index, "manifests")
        .iter()
        .map(|e| str_at(&e["annotations"], ANN_REF_NAME))
        .collect();
    assert_eq!(tags, ["one", "two"]);
}

#[test]
fn reset_drops_blobs_no_entry_refers_to() {
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let cache = tmp.path().join("cache");
    cache_export(
        &sample_image(),
        &[format!("type=local,dest={}", path_str(&cache))],
    )
    .assert_success();
    let sample_blob = cache
        .join("blobs/sha256")
        .join(digest_hex(&sample_layers()[0]));
    assert!(sample_blob.is_file());

    // Without reset the replaced entry's blobs stay.
    cache_export(&bk.dir, &[format!("type=local,dest={}", path_str(&cache))]).assert_success();
    assert!(sample_blob.is_file());

    cache_export(
        &bk.dir,
        &[format!("type=local,dest={},reset=true", path_str(&cache))],
    )
    .assert_success();
    assert!(!sample_blob.exists());
    let written = read_cache(&cache, "latest");
    let files = LayoutFiles::from_dir(&cache);
    let index = files.index_json();
    let root = str_at(&index["manifests"][0], "digest").to_owned();
    let config = sha256_digest(&written.config);
    let mut expected: Vec<String> = written.layers.clone();
    expected.extend([root, config]);
    expected.sort();
    let present: Vec<String> = files.blob_digests().into_iter().collect();
    assert_eq!(present, expected);
}

#[test]
fn ignore_error_reports_a_failed_cache_export_but_the_run_succeeds() {
    let tmp = tempdir();
    // A file where the cache directory should be: the cache export fails.
    let blocked = tmp.path().join("blocked");
    fs::write(&blocked, b"not a directory").unwrap();
    for ignore in [true, false] {
        let image_out = tmp.path().join(format!("image-{ignore}"));
        let metadata = tmp.path().join(format!("metadata-{ignore}.json"));
        let run = export_sample_with_caches(
            &format!("type=oci,dest={}", path_str(&image_out)),
            &metadata,
            &[format!(
                "type=local,dest={},ignore-error={ignore}",
                path_str(&blocked)
            )],
        );
        if ignore {
            run.assert_success();
        } else {
            run.assert_code(1);
            run.assert_error(&["cache-0", "blocked"], &["is a file"]);
        }
        // The image output is written either way; the cache dest is untouched.
        assert!(image_out.is_file());
        assert_eq!(fs::read(&blocked).unwrap(), b"not a directory");
        assert_metadata_valid(&metadata);
        let doc = read_json(&metadata);
        let entry = &array_at(&doc, "cache")[0];
        assert_eq!(entry["status"], "failed");
        assert_eq!(entry.get("ignore_error").is_some(), ignore);
        assert!(str_at(entry, "error").contains("is a file"), "{entry}");
    }
}

#[test]
fn bad_caches_are_refused_and_nothing_is_written() {
    let tmp = tempdir();
    type Break = fn(&BuildkitCache);
    let cases: [(&str, Break, &[&str], &[&str]); 4] = [
        (
            "missing-blob",
            |bk| Layout::open(&bk.dir).remove_blob(&bk.layers[1]),
            &["blobs/sha256"],
            &["missing blob"],
        ),
        (
            "bad-config",
            |bk| {
                let layout = Layout::open(&bk.dir);
                let digest = sha256_digest(&bk.config);
                fs::write(layout.blob_path(&digest), b"{\"layers\": [").unwrap();
            },
            &["blobs/sha256"],
            &["size", "digest", "malformed"],
        ),
        (
            "bad-config-json",
            |bk| {
                // Valid bytes for their digest, but not a cache config.
                let layout = Layout::open(&bk.dir);
                let (digest, size) = layout.add_blob(b"{\"layers\": 7}");
                let files = layout.files();
                let index = files.index_json();
                let root_digest = str_at(&index["manifests"][0], "digest").to_owned();
                layout.rewrite_json_blob(&root_digest, |m| {
                    m["config"]["digest"] = json!(digest);
                    m["config"]["size"] = json!(size);
                });
            },
            &["blobs/sha256"],
            &["malformed cache config"],
        ),
        (
            "digest-mismatch",
            |bk| Layout::open(&bk.dir).corrupt_blob(&bk.layers[0]),
            &["sha256:"],
            &["digest"],
        ),
    ];
    for (name, break_it, mentions, words) in cases {
        let bk = buildkit_cache(tmp.path(), name, true);
        break_it(&bk);
        let dest = tmp.path().join(format!("{name}-out"));
        let run = cache_export(&bk.dir, &[format!("type=local,dest={}", path_str(&dest))]);
        run.assert_code(1);
        run.assert_error(mentions, words);
        assert_empty_or_absent(&dest);
    }

    // An import whose source blob does not match its digest: the host's
    // check of the imported layout refuses it before it is moved into place.
    let stored = tmp.path().join("stored");
    cache_export(
        &sample_image(),
        &[format!("type=local,dest={}", path_str(&stored))],
    )
    .assert_success();
    Layout::open(&stored).corrupt_blob(&sample_layers()[0]);
    let imported = tmp.path().join("imported");
    let run = cache_import(&format!("type=local,src={}", path_str(&stored)), &imported);
    run.assert_code(1);
    run.assert_error(&[digest_hex(&sample_layers()[0])], &["digest"]);
    assert_empty_or_absent(&imported);
}

#[test]
fn local_cache_docs_match_describe() {
    assert_docs_match_describe("local");
}
