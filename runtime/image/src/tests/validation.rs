//! What is checked when an image is opened: digests of indexes, manifests
//! and configs, sizes, missing blobs, media types, JSON and digest strings.

use std::fs;

use serde_json::json;

use super::err;
use crate::testutil::*;
use crate::{Error, open};

#[test]
fn config_digest_mismatch_detected_at_open() {
    let (f, imgs) = Fixture::multi_platform();
    let mut bad = fs::read(f.blob_path(&imgs[1].config)).unwrap();
    let last = bad.len() - 2;
    bad[last] = b' ';
    rewrite(&f.blob_path(&imgs[1].config), &bad);
    let e = err(&f.path());
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
}

#[test]
fn size_mismatch() {
    let (f, imgs) = Fixture::multi_platform();
    let mut bigger = imgs[1].layer_bytes.clone();
    bigger.extend_from_slice(&[0; 512]);
    rewrite(&f.blob_path(&imgs[1].layer), &bigger);
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}: blob {} (layer of manifest {}): size mismatch: descriptor says {} bytes, file has {}",
            f.path(),
            imgs[1].layer.digest,
            imgs[1].manifest.digest,
            imgs[1].layer.size,
            bigger.len()
        )
    );
    // Same in an archive (tar entry size).
    let out = f.out("img.tar");
    f.pack(&out);
    assert!(matches!(err(&out), Error::SizeMismatch { .. }));
}

#[test]
fn missing_blob() {
    let (f, imgs) = Fixture::multi_platform();
    fs::remove_file(f.blob_path(&imgs[0].config)).unwrap();
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/blobs/sha256/{}: missing blob (config of manifest {})",
            f.path(),
            imgs[0].config.hex(),
            imgs[0].manifest.digest
        )
    );
    let out = f.out("img.tar");
    f.pack(&out);
    assert_eq!(
        err(&out).to_string(),
        format!(
            "{out}/blobs/sha256/{}: missing blob (config of manifest {})",
            imgs[0].config.hex(),
            imgs[0].manifest.digest
        )
    );
}

/// Writes a manifest from `value`, an index.json pointing at it, and opens.
fn open_with_manifest(
    f: &Fixture,
    value: serde_json::Value,
    descriptor_type: &str,
) -> (Error, Written) {
    let m = f.add_blob(&serde_json::to_vec(&value).unwrap());
    f.write_index(vec![m.descriptor(descriptor_type)]);
    (err(&f.path()), m)
}

#[test]
fn unknown_media_type() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"x");
    let (e, m) = open_with_manifest(
        &f,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": img.config.descriptor(OCI_CONFIG),
               "layers": [img.layer.descriptor("application/foo")]}),
        OCI_MANIFEST,
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}/blobs/sha256/{}: unknown media type \"application/foo\" for blob {} (layer of manifest {})",
            f.path(),
            m.hex(),
            img.layer.digest,
            m.digest
        )
    );
    // Also for the root.
    f.write_index(vec![img.manifest.descriptor("application/foo")]);
    assert!(matches!(err(&f.path()), Error::UnknownMediaType { .. }));
}

#[test]
fn artifact_manifest_accepts_any_config_and_layer_type() {
    let f = Fixture::new();
    let empty = f.add_blob(b"{}");
    let payload = f.add_blob(b"signature");
    let m = f.add_blob(
        &serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": empty.descriptor("application/vnd.oci.empty.v1+json"),
            "layers": [payload.descriptor("application/vnd.example.sig.v1")]}))
        .unwrap(),
    );
    f.write_index(vec![m.descriptor(OCI_MANIFEST)]);
    let image = open(&f.path()).unwrap();
    assert_eq!(image.blobs().count(), 3);
}

#[test]
fn media_type_disagrees_with_descriptor() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"x");
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    let (e, m) = open_with_manifest(
        &f,
        json!({"schemaVersion": 2, "mediaType": docker,
               "config": img.config.descriptor(OCI_CONFIG),
               "layers": [img.layer.descriptor(OCI_LAYER)]}),
        OCI_MANIFEST,
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: blob {} (image of index.json): mediaType \"{docker}\" in the content disagrees with the descriptor's \"{OCI_MANIFEST}\"",
            f.path(),
            m.digest
        )
    );
}

#[test]
fn malformed_json() {
    let (f, imgs) = Fixture::multi_platform();
    rewrite(&f.dir.join("index.json"), b"{\"manifests\": [}");
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/index.json: malformed JSON: expected value at line 1 column 16",
            f.path()
        )
    );
    // A malformed manifest blob (digest matching its bad content).
    let m = f.add_blob(b"{not json");
    f.write_index(vec![m.descriptor(OCI_MANIFEST)]);
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/blobs/sha256/{}: malformed JSON: key must be a string at line 1 column 2",
            f.path(),
            m.hex()
        )
    );
    drop(imgs);
}

#[test]
fn bad_digest_string() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"x");
    let mut e = img.manifest.descriptor(OCI_MANIFEST);
    e["digest"] = json!("sha256:../../etc");
    f.write_index(vec![e]);
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/index.json: invalid digest \"sha256:../../etc\" (entry 1 of index.json): expected \"sha256:\" followed by 64 lowercase hex digits",
            f.path()
        )
    );
    let mut e = img.manifest.descriptor(OCI_MANIFEST);
    e["digest"] = json!(
        img.manifest
            .digest
            .to_uppercase()
            .replace("SHA256", "sha256")
    );
    f.write_index(vec![e]);
    assert!(matches!(err(&f.path()), Error::InvalidDigest { .. }));
}

#[test]
fn indexes_nest_eight_levels_deep_and_no_deeper() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"nested\n");
    // Each level one index more above the image's manifest.
    let mut top = img.manifest.descriptor(OCI_MANIFEST);
    let mut levels = Vec::new();
    for _ in 0..9 {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]});
        let written = f.add_blob(&serde_json::to_vec(&index).unwrap());
        top = written.descriptor(OCI_INDEX);
        levels.push(written);
    }
    f.write_index(vec![levels[7].descriptor(OCI_INDEX)]);
    let image = open(&f.path()).unwrap();
    assert_eq!(image.root().digest().to_string(), levels[7].digest);
    f.write_index(vec![levels[8].descriptor(OCI_INDEX)]);
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/blobs/sha256/{}: indexes nest deeper than 8 levels",
            f.path(),
            levels[0].hex()
        )
    );
}
