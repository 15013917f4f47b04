//! Each kind of input opens (OCI layout directory, OCI archive, legacy and
//! Docker 25 `docker save` tarballs), and what is not an image is refused.

use std::fs;

use serde_json::json;

use super::{err, read_to_end};
use crate::testutil::*;
use crate::{Error, Image, open, sha256_digest};

/// The multi-platform fixture opened from `input`: root is index.json.
fn check_multi_platform(image: &Image, f: &Fixture, imgs: &[Img]) {
    let root = image.root();
    assert_eq!(root.media_type().to_string(), OCI_INDEX);
    let index_json = fs::read(f.dir.join("index.json")).unwrap();
    assert_eq!(root.digest().to_string(), sha256_digest(&index_json));
    assert_eq!(root.size(), index_json.len() as u64);
    assert_eq!(image.blobs().count(), 1 + 3 * imgs.len());
    let root_blob = image.blob(root.digest().as_ref()).unwrap();
    assert!(root_blob.is_verified());
    assert_eq!(root_blob.read_all(1 << 20).unwrap(), index_json);
    for img in imgs {
        for w in [&img.manifest, &img.config] {
            assert!(
                image.blob(&w.digest).unwrap().is_verified(),
                "JSON blobs are verified"
            );
        }
        let layer = image.blob(&img.layer.digest).unwrap();
        assert_eq!(layer.descriptor().media_type().to_string(), OCI_LAYER);
        assert!(!layer.is_verified(), "layers are not read at open time");
        assert_eq!(read_to_end(layer).unwrap(), img.layer_bytes);
        assert!(layer.is_verified());
    }
}

#[test]
fn oci_dir_multi_platform_index_is_root() {
    let (f, imgs) = Fixture::multi_platform();
    let image = open(&f.path()).unwrap();
    assert_eq!(image.name(), f.path());
    check_multi_platform(&image, &f, &imgs);
}

#[test]
fn oci_dir_single_entry() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"one");
    f.write_index(vec![entry(
        &img,
        &[(crate::layout::REF_NAME, "latest")],
        false,
    )]);
    let image = open(&f.path()).unwrap();
    assert_eq!(image.root().digest().to_string(), img.manifest.digest);
    assert_eq!(image.root().media_type().to_string(), OCI_MANIFEST);
    assert_eq!(image.blobs().count(), 3);
    assert_eq!(
        image
            .blobs()
            .next()
            .unwrap()
            .descriptor()
            .digest()
            .to_string(),
        img.manifest.digest
    );
}

#[test]
fn oci_archive() {
    let (f, imgs) = Fixture::multi_platform();
    let out = f.out("img.tar");
    f.pack(&out);
    let image = open(&out).unwrap();
    check_multi_platform(&image, &f, &imgs);
}

#[test]
fn legacy_docker_save_with_symlinked_layer() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"shared layer");
    let b = f.add_image("arm64", b"shared layer");
    assert_eq!(a.layer.digest, b.layer.digest);
    let out = f.out("save.tar");
    f.pack_legacy(&out, &[(&["foo:1"], &a), (&["bar:2", "bar:latest"], &b)]);

    let e = err(&out);
    assert_eq!(
        e.to_string(),
        format!("input {out} holds 2 images (foo:1, bar:2); choose one with {out}:REF")
    );

    for reference in ["bar:2", "docker.io/library/bar:2", "2", "bar"] {
        let image = open(&format!("{out}:{reference}")).unwrap();
        let root = image.root();
        assert_eq!(root.media_type().to_string(), OCI_MANIFEST);
        assert_eq!(
            root.platform().as_ref().unwrap().architecture().to_string(),
            "arm64"
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &image
                .blob(root.digest().as_ref())
                .unwrap()
                .read_all(1 << 20)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["config"]["digest"], b.config.digest.as_str());
        assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(manifest["layers"][0]["digest"], b.layer.digest.as_str());
        assert_eq!(manifest["layers"][0]["mediaType"], OCI_LAYER);
        let layer = image.blob(&b.layer.digest).unwrap();
        assert!(!layer.is_verified());
        assert_eq!(read_to_end(layer).unwrap(), b.layer_bytes);
        assert!(layer.is_verified());
        assert_eq!(image.blobs().count(), 3);
    }
    // The config digest (the docker image ID) selects too.
    let image = open(&format!("{out}:{}", a.config.digest)).unwrap();
    assert_eq!(
        image.root().annotations().as_ref().unwrap()["io.containerd.image.name"],
        "docker.io/library/foo:1"
    );
}

#[test]
fn legacy_docker_save_single_image_and_gzip_layer() {
    let f = Fixture::new();
    // A "gzip" layer: only the magic matters to the reader; its diff_id is
    // whatever the config says, its digest is computed from the bytes.
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.extend_from_slice(b"not really deflate");
    let img = f.add_image_with_layer("amd64", gz.clone());
    let out = f.out("save.tar");
    f.pack_legacy(&out, &[(&["gz:1"], &img)]);
    let image = open(&out).unwrap();
    let layer = image.blob(&sha256_digest(&gz)).unwrap();
    assert_eq!(
        layer.descriptor().media_type().to_string(),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(layer.is_verified());
    assert_eq!(layer.read_all(1 << 20).unwrap(), gz);
}

#[test]
fn legacy_diff_id_count_mismatch() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"x");
    // Config lists two diff_ids for one layer.
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [img.layer.digest, img.layer.digest]}});
    rewrite(
        &f.blob_path(&img.config),
        &serde_json::to_vec(&config).unwrap(),
    );
    let out = f.out("save.tar");
    f.pack_legacy(&out, &[(&["foo:1"], &img)]);
    assert_eq!(
        err(&out).to_string(),
        format!(
            "{out}/manifest.json: image foo:1 has 1 layers but its config {}.json lists 2 diff_ids",
            img.config.hex()
        )
    );
}

#[test]
fn docker25_save_prefers_oci_index() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"foo");
    let b = f.add_image("amd64", b"bar");
    f.write_index(vec![
        entry(
            &a,
            &[
                (crate::layout::CONTAINERD_NAME, "docker.io/library/foo:1"),
                (crate::layout::REF_NAME, "1"),
            ],
            false,
        ),
        entry(
            &b,
            &[
                (crate::layout::CONTAINERD_NAME, "docker.io/library/bar:2"),
                (crate::layout::REF_NAME, "2"),
            ],
            false,
        ),
    ]);
    let out = f.out("save.tar");
    f.pack_docker25(&out, &[("foo:1", &a), ("bar:2", &b)]);

    assert_eq!(
        err(&out).to_string(),
        format!("input {out} holds 2 images (foo:1, bar:2); choose one with {out}:REF")
    );
    for (reference, img) in [
        ("foo:1", &a),
        ("docker.io/library/foo:1", &a),
        ("1", &a),
        ("bar:2", &b),
        ("2", &b),
    ] {
        let image = open(&format!("{out}:{reference}")).unwrap();
        // The manifest from the OCI index, not a synthesised one.
        assert_eq!(
            image.root().digest().to_string(),
            img.manifest.digest,
            "{reference}"
        );
        assert_eq!(image.blobs().count(), 3);
    }
}

#[test]
fn not_found_and_not_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope").to_str().unwrap().to_owned();
    assert_eq!(
        err(&missing).to_string(),
        format!("{missing}: no such file or directory")
    );
    let empty = tmp.path().to_str().unwrap().to_owned();
    assert_eq!(
        err(&empty).to_string(),
        format!("{empty}: not an image: no index.json or manifest.json")
    );
    let junk = tmp.path().join("junk.bin");
    fs::write(&junk, vec![b'x'; 1024]).unwrap();
    let junk = junk.to_str().unwrap();
    assert!(
        matches!(err(junk), Error::NotAnImage { .. }),
        "{}",
        err(junk)
    );
}

#[test]
fn gzip_archive_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("img.tar.gz");
    fs::write(&path, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let p = path.to_str().unwrap();
    assert_eq!(
        err(p).to_string(),
        format!(
            "{p}: gzip-compressed archive: outport reads uncompressed tar archives only; decompress it first"
        )
    );
}

#[test]
fn truncated_tar() {
    let (f, imgs) = Fixture::multi_platform();
    let out = f.out("img.tar");
    f.pack(&out);
    // Cut the archive in the middle of the last entry's data (after its header).
    let data = fs::read(&out).unwrap();
    let blob_name = format!("blobs/sha256/{}", imgs[1].manifest.hex());
    let at = data
        .windows(blob_name.len())
        .position(|w| w == blob_name.as_bytes())
        .unwrap();
    let header_start = at - at % 512;
    fs::write(&out, &data[..header_start + 512 + 10]).unwrap();
    let e = err(&out);
    assert!(matches!(e, Error::TruncatedTar { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{out}: truncated tar archive: entry ")),
        "{e}"
    );
    // Cut inside a header block.
    fs::write(&out, &data[..header_start + 100]).unwrap();
    let e = err(&out);
    assert!(
        e.to_string()
            .starts_with(&format!("{out}: truncated tar archive: ")),
        "{e}"
    );
}
