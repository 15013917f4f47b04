//! The checked-in sample image: current (the script reproduces it byte for
//! byte), small, multi-platform, consistent, and readable by skopeo.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use crate::common::*;

#[test]
fn checked_in_sample_is_what_the_script_writes() {
    let sample = sample_image();
    let output = sample_script_run(&["--check", path_str(&sample)]);
    assert!(
        output.status.success(),
        "examples/sample-image is not what examples/make-sample-image.py writes; \
         regenerate it with `python3 examples/make-sample-image.py`\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn script_writes_the_same_bytes_again_and_check_notices_changes() {
    let tmp = tempdir();
    let written = tmp.path().join("written");
    let output = sample_script_run(&[path_str(&written)]);
    assert!(
        output.status.success(),
        "make-sample-image.py failed: {output:?}"
    );
    let fresh = LayoutFiles::from_dir(&written);
    let checked_in = LayoutFiles::from_dir(&sample_image());
    assert!(
        fresh.files == checked_in.files,
        "a fresh run differs from examples/sample-image"
    );

    // --check fails on a changed file, an extra file and a missing file.
    let index = written.join("index.json");
    fs::write(&index, b"{}").expect("write index.json");
    let output = sample_script_run(&["--check", path_str(&written)]);
    assert!(
        !output.status.success(),
        "--check accepted a changed index.json"
    );

    let written = tmp.path().join("written-again");
    let output = sample_script_run(&[path_str(&written)]);
    assert!(
        output.status.success(),
        "make-sample-image.py failed: {output:?}"
    );
    fs::write(written.join("blobs/sha256/extra"), b"extra").expect("write");
    let output = sample_script_run(&["--check", path_str(&written)]);
    assert!(!output.status.success(), "--check accepted an extra blob");
    fs::remove_file(written.join("blobs/sha256/extra")).expect("remove");
    let output = sample_script_run(&["--check", path_str(&written)]);
    assert!(
        output.status.success(),
        "--check rejected a fresh copy: {output:?}"
    );
    fs::remove_file(written.join("oci-layout")).expect("remove");
    let output = sample_script_run(&["--check", path_str(&written)]);
    assert!(
        !output.status.success(),
        "--check accepted a missing oci-layout"
    );
}

#[test]
fn sample_is_small() {
    let files = LayoutFiles::from_dir(&sample_image());
    let total: usize = files.files.values().map(Vec::len).sum();
    assert!(total < 1024 * 1024, "the sample image is {total} bytes");
}

/// A gzip layer of the sample whose uncompressed tar has `diff_id`.
fn assert_gzip_layer(files: &LayoutFiles, layer: &serde_json::Value, diff_id: &serde_json::Value) {
    assert_eq!(layer["mediaType"], MT_LAYER_GZIP, "{layer}");
    let digest = str_at(layer, "digest");
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(files.blob(digest))
        .read_to_end(&mut tar_bytes)
        .unwrap_or_else(|e| panic!("gunzip layer {digest}: {e}"));
    assert_eq!(
        diff_id.as_str(),
        Some(sha256_digest(&tar_bytes).as_str()),
        "diff ID of layer {digest}"
    );
}

/// The per-platform layer `layer` of the platform of descriptor `desc`: the
/// platform file, a hard link and a whiteout of the base layer's README.
fn assert_platform_layer(files: &LayoutFiles, layer: &serde_json::Value, desc: &serde_json::Value) {
    let top = str_at(layer, "digest");
    let entries = layer_entries(files.blob(top));
    let platform = entries
        .get("app/platform.txt")
        .unwrap_or_else(|| panic!("no app/platform.txt in {top}"));
    assert_eq!(
        String::from_utf8_lossy(&platform.1),
        format!("{}\n", platform_string(&desc["platform"]))
    );
    assert!(
        entries
            .get("app/hi")
            .is_some_and(|e| e.0 == tar::EntryType::Link),
        "no hard link app/hi in {top}"
    );
    assert!(
        entries.contains_key("usr/share/sample/.wh.README"),
        "no whiteout in {top}"
    );
}

#[test]
fn sample_is_a_consistent_two_platform_image() {
    let files = LayoutFiles::from_dir(&sample_image());
    files.verify();

    let root = files.root();
    assert_eq!(root["mediaType"], MT_INDEX, "{root}");
    assert_eq!(root["annotations"][ANN_REF_NAME], SAMPLE_TAG, "{root}");
    assert_eq!(root["annotations"][ANN_IMAGE_NAME], SAMPLE_NAME, "{root}");
    let index = files.blob_json(str_at(&root, "digest"));
    assert_eq!(index_platforms(&index), sample_platforms());

    let mut layer_use: BTreeMap<String, usize> = BTreeMap::new();
    for arch in ["amd64", "arm64"] {
        let desc = files.manifest_descriptor(arch);
        assert_eq!(desc["mediaType"], MT_MANIFEST, "{desc}");
        let manifest = files.manifest(arch);
        assert_eq!(manifest["mediaType"], MT_MANIFEST, "{manifest}");
        assert_eq!(manifest["config"]["mediaType"], MT_CONFIG, "{manifest}");
        let layers = array_at(&manifest, "layers");
        assert!(
            layers.len() >= 2,
            "{arch} has fewer than 2 layers: {manifest}"
        );

        let config = files.blob_json(str_at(&manifest["config"], "digest"));
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux", "{config}");
        assert_eq!(config["config"]["Cmd"][0], "/app/hello", "{config}");
        let diff_ids = array_at(&config["rootfs"], "diff_ids");
        assert_eq!(diff_ids.len(), layers.len(), "{config}");
        assert_eq!(array_at(&config, "history").len(), layers.len(), "{config}");

        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            assert_gzip_layer(&files, layer, diff_id);
            *layer_use
                .entry(str_at(layer, "digest").to_owned())
                .or_default() += 1;
        }

        assert_platform_layer(&files, &layers[layers.len() - 1], &desc);
    }
    // One base layer, shared by both platforms, holding the README that the
    // per-platform layers delete.
    let shared: Vec<&String> = layer_use
        .iter()
        .filter(|(_, uses)| **uses == 2)
        .map(|(digest, _)| digest)
        .collect();
    assert_eq!(shared.len(), 1, "layers and their uses: {layer_use:?}");
    let base = layer_entries(files.blob(shared[0]));
    assert!(
        base.contains_key("usr/share/sample/README"),
        "no README in the base layer"
    );
    assert!(
        base.get("etc/sample-release")
            .is_some_and(|e| e.0 == tar::EntryType::Symlink),
        "no symlink etc/sample-release in the base layer"
    );
}

/// A gzip layer's entries: path -> (type, data).
fn layer_entries(gzip: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzip));
    let mut entries = BTreeMap::new();
    for entry in archive.entries().expect("read a layer") {
        let mut entry = entry.expect("read a layer entry");
        let path = entry
            .path()
            .expect("a layer path")
            .to_string_lossy()
            .into_owned();
        let path = path.trim_end_matches('/').to_owned();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .expect("read a layer entry's data");
        entries.insert(path, (kind, data));
    }
    entries
}

#[test]
fn skopeo_reads_the_sample() {
    // skopeo reads a copy, so nothing can touch the repository.
    let tmp = tempdir();
    let copy = copy_sample(tmp.path(), "sample");
    let raw = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&copy, SAMPLE_TAG)]);
    assert_eq!(raw["mediaType"], MT_INDEX, "{raw}");
    assert_eq!(index_platforms(&raw), sample_platforms());
    for arch in ["amd64", "arm64"] {
        let image = skopeo_json(&[
            "inspect",
            "--override-arch",
            arch,
            &oci_dir_ref(&copy, SAMPLE_TAG),
        ]);
        assert_eq!(image["Architecture"], arch, "{image}");
        assert_eq!(array_at(&image, "Layers").len(), 2, "{image}");
    }
}
