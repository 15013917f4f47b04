//! Tests of the whole reader on images built by [`crate::testutil`].

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;

use serde_json::json;

use crate::testutil::*;
use crate::{Blob, BlobReader, Error, Image, open, sha256_digest};

fn err(input: &str) -> Error {
    match open(input) {
        Ok(img) => panic!("{input} opened: root {:?}", img.root()),
        Err(e) => e,
    }
}

fn read_to_end(blob: &Blob) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = blob.open();
    let mut buf = [0u8; 7]; // odd chunk size on purpose
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

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
fn ref_selection() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"a");
    let b = f.add_image("amd64", b"b");
    f.write_index(vec![
        entry(&a, &[(crate::layout::REF_NAME, "latest")], true),
        entry(&b, &[(crate::layout::REF_NAME, "v2")], true),
    ]);
    let p = f.path();
    assert_eq!(
        open(&format!("{p}:latest"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        a.manifest.digest
    );
    assert_eq!(
        open(&format!("{p}:v2"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        b.manifest.digest
    );
    let by_digest = open(&format!("{p}:{}", b.manifest.digest)).unwrap();
    assert_eq!(by_digest.root().digest().to_string(), b.manifest.digest);
    assert_eq!(by_digest.name(), format!("{p}:{}", b.manifest.digest));

    assert_eq!(
        err(&p).to_string(),
        format!("input {p} holds 2 images (latest, v2); choose one with {p}:REF")
    );
    assert_eq!(
        err(&format!("{p}:nope")).to_string(),
        format!("{p}: no image matches \"nope\" (available: latest, v2)")
    );
    let other = sha256_digest(b"other");
    assert_eq!(
        err(&format!("{p}:{other}")).to_string(),
        format!("{p}: no image matches \"{other}\" (available: latest, v2)")
    );
    assert!(matches!(
        err(&format!("{p}:sha256:abc")),
        Error::InvalidDigest { .. }
    ));
}

#[test]
fn ambiguous_bare_tag() {
    let f = Fixture::new();
    let a = f.add_image("amd64", b"a");
    let b = f.add_image("amd64", b"b");
    f.write_index(vec![
        entry(
            &a,
            &[(crate::layout::CONTAINERD_NAME, "docker.io/library/foo:1")],
            false,
        ),
        entry(
            &b,
            &[(crate::layout::CONTAINERD_NAME, "docker.io/library/bar:1")],
            false,
        ),
    ]);
    let p = f.path();
    assert_eq!(
        err(&format!("{p}:1")).to_string(),
        format!("{p}: several images match \"1\" (available: foo:1, bar:1)")
    );
    assert_eq!(
        open(&format!("{p}:bar:1"))
            .unwrap()
            .root()
            .digest()
            .to_string(),
        b.manifest.digest
    );
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

#[test]
fn layer_digest_mismatch_detected_when_streamed() {
    let (f, imgs) = Fixture::multi_platform();
    let mut bad = imgs[0].layer_bytes.clone();
    bad[0] ^= 1; // same size, other content
    rewrite(&f.blob_path(&imgs[0].layer), &bad);
    let image = open(&f.path()).unwrap();
    let layer = image.blob(&imgs[0].layer.digest).unwrap();

    let e = read_to_end(layer).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    let expected = format!(
        "{}: blob {} (layer of manifest {}): digest mismatch: content hashes to {}",
        f.path(),
        imgs[0].layer.digest,
        imgs[0].manifest.digest,
        sha256_digest(&bad)
    );
    assert_eq!(e.to_string(), expected);
    assert!(!layer.is_verified());

    let dest = tempfile::tempfile().unwrap();
    let e = layer.copy_to_file(&dest, 0).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }));
    assert_eq!(e.to_string(), expected);
    let e = layer.read_all(1 << 20).unwrap_err();
    assert_eq!(e.to_string(), expected);
}

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
fn short_file_while_streaming() {
    let (f, imgs) = Fixture::multi_platform();
    let image = open(&f.path()).unwrap();
    // The file shrinks after validation.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(f.blob_path(&imgs[0].layer))
        .unwrap();
    file.set_len(100).unwrap();
    let layer = image.blob(&imgs[0].layer.digest).unwrap();
    let e = read_to_end(layer).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        e.to_string().ends_with(&format!(
            "file ended after 100 of {} bytes",
            imgs[0].layer.size
        )),
        "{e}"
    );
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
fn large_layer_streams_through_copy_to_file() {
    let f = Fixture::new();
    // 64 MiB of a non-repeating-ish pattern.
    let mut layer = vec![0u8; 64 << 20];
    let mut x: u32 = 12345;
    for chunk in layer.chunks_mut(4) {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let img = f.add_image_with_layer("amd64", layer);
    f.write_index(vec![entry(&img, &[], true)]);
    let image = open(&f.path()).unwrap();
    let blob = image.blob(&img.layer.digest).unwrap();
    assert!(!blob.is_verified());

    // Slow path (unverified): hashed while copied, at an offset.
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(blob.copy_to_file(&dest, 4096).unwrap(), img.layer.size);
    assert!(blob.is_verified());
    let mut copied = vec![0u8; img.layer_bytes.len()];
    dest.read_exact_at(&mut copied, 4096).unwrap();
    assert!(copied == img.layer_bytes);
    assert_eq!(sha256_digest(&copied), img.layer.digest);

    // Fast path (verified): copy_file_range or its fallback.
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(blob.copy_to_file(&dest, 0).unwrap(), img.layer.size);
    assert_eq!(dest.metadata().unwrap().len(), img.layer.size);
    dest.read_exact_at(&mut copied, 0).unwrap();
    assert!(copied == img.layer_bytes);

    // And from an archive (a byte range of the tar file).
    let out = f.out("big.tar");
    f.pack(&out);
    let image = open(&out).unwrap();
    let blob = image.blob(&img.layer.digest).unwrap();
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(blob.copy_to_file(&dest, 0).unwrap(), img.layer.size);
    dest.read_exact_at(&mut copied, 0).unwrap();
    assert!(copied == img.layer_bytes);
}

#[test]
fn copy_of_a_multi_chunk_layer_fails_on_a_changed_byte_or_a_short_file() {
    // Larger than one copy chunk: hashed on a second thread while copied.
    let layer: Vec<u8> = (0..(5u32 << 20) / 2).map(|i| (i % 253) as u8).collect();
    for damage in ["flip the last byte", "cut the file"] {
        let f = Fixture::new();
        let img = f.add_image_with_layer("amd64", layer.clone());
        f.write_index(vec![entry(&img, &[], true)]);
        let image = open(&f.path()).unwrap();
        let path = f.blob_path(&img.layer);
        if damage == "flip the last byte" {
            let mut bad = layer.clone();
            *bad.last_mut().unwrap() ^= 1;
            rewrite(&path, &bad);
        } else {
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(2 << 20).unwrap();
        }
        let blob = image.blob(&img.layer.digest).unwrap();
        let dest = tempfile::tempfile().unwrap();
        let e = blob.copy_to_file(&dest, 0).expect_err(damage);
        match damage {
            "flip the last byte" => assert!(matches!(e, Error::DigestMismatch { .. }), "{e}"),
            _ => assert!(
                e.to_string().ends_with(&format!(
                    "file ended after {} of {} bytes",
                    2 << 20,
                    layer.len()
                )),
                "{e}"
            ),
        }
        assert!(!blob.is_verified(), "{damage}");
    }
}

#[test]
fn insert_blob_and_set_root() {
    let (f, _) = Fixture::multi_platform();
    let mut image = open(&f.path()).unwrap();
    let before = image.blobs().count();
    let data = br#"{"schemaVersion":2}"#.to_vec();
    let desc = image.insert_blob(OCI_INDEX, data.clone());
    assert_eq!(desc.digest().to_string(), sha256_digest(&data));
    assert_eq!(desc.size(), data.len() as u64);
    assert_eq!(image.blobs().count(), before + 1);
    image.insert_blob(OCI_INDEX, data.clone());
    assert_eq!(
        image.blobs().count(),
        before + 1,
        "same digest is not added twice"
    );
    image.set_root(desc.clone());
    assert_eq!(image.root(), &desc);
    let blob = image.blob(desc.digest().as_ref()).unwrap();
    assert!(blob.is_verified());
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(blob.copy_to_file(&dest, 3).unwrap(), data.len() as u64);
    let mut back = vec![0; data.len()];
    dest.read_exact_at(&mut back, 3).unwrap();
    assert_eq!(back, data);
}

#[test]
fn thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Blob>();
    send_sync::<Image>();
    send::<BlobReader>();
}

#[test]
fn concurrent_copies_of_an_unverified_blob_all_get_verified_bytes() {
    let f = Fixture::new();
    let layer: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
    let img = f.add_image_with_layer("amd64", layer);
    f.write_index(vec![entry(&img, &[], true)]);
    let image = open(&f.path()).unwrap();
    let blob = image.blob(&img.layer.digest).unwrap().clone();
    assert!(!blob.is_verified());
    // One copy verifies while the others wait, then take the fast path.
    let copies: Vec<_> = (0..4)
        .map(|_| {
            let blob = blob.clone();
            std::thread::spawn(move || {
                let dest = tempfile::tempfile().unwrap();
                let n = blob.copy_to_file(&dest, 0).unwrap();
                let mut bytes = vec![0u8; usize::try_from(n).unwrap()];
                dest.read_exact_at(&mut bytes, 0).unwrap();
                bytes
            })
        })
        .collect();
    for copy in copies {
        let bytes = copy.join().unwrap();
        assert!(bytes == img.layer_bytes);
    }
    assert!(blob.is_verified());
}

#[test]
fn concurrent_copies_of_a_corrupt_blob_all_fail() {
    let f = Fixture::new();
    let layer: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 241) as u8).collect();
    let img = f.add_image_with_layer("amd64", layer.clone());
    f.write_index(vec![entry(&img, &[], true)]);
    let image = open(&f.path()).unwrap();
    let mut bad = layer;
    bad[4 << 20] ^= 1;
    rewrite(&f.blob_path(&img.layer), &bad);
    let blob = image.blob(&img.layer.digest).unwrap().clone();
    // Whether a copy verifies or copies while another verifies, none succeeds.
    let copies: Vec<_> = (0..4)
        .map(|_| {
            let blob = blob.clone();
            std::thread::spawn(move || {
                let dest = tempfile::tempfile().unwrap();
                blob.copy_to_file(&dest, 0)
            })
        })
        .collect();
    for copy in copies {
        let e = copy.join().unwrap().unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    }
    assert!(!blob.is_verified());
}

#[test]
fn a_reader_after_verification_reads_without_rehashing_and_still_ends_cleanly() {
    let f = Fixture::new();
    let img = f.add_image_with_layer("amd64", b"0123456789".repeat(1000));
    f.write_index(vec![entry(&img, &[], true)]);
    let image = open(&f.path()).unwrap();
    let blob = image.blob(&img.layer.digest).unwrap();
    let mut first = Vec::new();
    blob.open().read_to_end(&mut first).unwrap();
    assert!(blob.is_verified());
    let mut second = Vec::new();
    blob.open().read_to_end(&mut second).unwrap();
    assert!(first == second && first == img.layer_bytes);
}

/// A fresh unverified 4 MiB layer image, and the layer's bytes.
fn shared_fixture() -> (Fixture, Image, String, Vec<u8>) {
    let f = Fixture::new();
    let layer: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 241) as u8).collect();
    let img = f.add_image_with_layer("amd64", layer);
    f.write_index(vec![entry(&img, &[], true)]);
    let image = open(&f.path()).unwrap();
    (f, image, img.layer.digest.clone(), img.layer_bytes.clone())
}

#[test]
fn concurrent_shared_readers_all_read_the_verified_bytes() {
    let (_f, image, digest, bytes) = shared_fixture();
    let blob = image.blob(&digest).unwrap().clone();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let blob = blob.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                blob.open_shared().read_to_end(&mut out).map(|_| out)
            })
        })
        .collect();
    for reader in readers {
        assert!(reader.join().unwrap().unwrap() == bytes);
    }
    assert!(blob.is_verified());
}

#[test]
fn a_waiting_shared_reader_takes_over_when_the_verifier_gives_up() {
    let (_f, image, digest, bytes) = shared_fixture();
    let blob = image.blob(&digest).unwrap().clone();
    // The first consumer claims verification and stops half-way.
    let mut first = blob.open_shared();
    let mut half = vec![0u8; bytes.len() / 2];
    first.read_exact(&mut half).unwrap();
    let waiter = {
        let blob = blob.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            blob.open_shared().read_to_end(&mut out).map(|_| out)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !waiter.is_finished(),
        "the second consumer waits for the first"
    );
    drop(first);
    assert!(waiter.join().unwrap().unwrap() == bytes);
    assert!(blob.is_verified());
}

#[test]
fn shared_readers_of_a_corrupt_blob_all_fail() {
    let (f, image, digest, bytes) = shared_fixture();
    let mut bad = bytes.clone();
    bad[7] ^= 1;
    fs::write(
        format!("{}/blobs/sha256/{}", f.path(), &digest["sha256:".len()..]),
        &bad,
    )
    .unwrap();
    let blob = image.blob(&digest).unwrap().clone();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let blob = blob.clone();
            std::thread::spawn(move || blob.open_shared().read_to_end(&mut Vec::new()))
        })
        .collect();
    for reader in readers {
        let e = reader.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }
    assert!(!blob.is_verified());
}

#[test]
fn verifying_ahead_marks_blobs_verified_unless_stopped_or_corrupt() {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    let f = Fixture::new();
    let good = f.add_image_with_layer("amd64", (0..(3u32 << 20)).map(|i| i as u8).collect());
    let bad = f.add_image_with_layer("arm64", (0..(3u32 << 20)).map(|i| (i % 7) as u8).collect());
    f.write_index(vec![entry(&good, &[], true), entry(&bad, &[], true)]);
    let image = open(&f.path()).unwrap();
    let mut corrupt = bad.layer_bytes.clone();
    corrupt[1 << 20] ^= 1;
    rewrite(&f.blob_path(&bad.layer), &corrupt);
    let good_blob = image.blob(&good.layer.digest).unwrap().clone();
    let bad_blob = image.blob(&bad.layer.digest).unwrap().clone();

    image.verify_ahead(&AtomicUsize::new(0), &AtomicBool::new(true));
    assert!(!good_blob.is_verified(), "a stopped pass verifies nothing");

    // Two walkers share one cursor: between them every blob is visited once.
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| image.verify_ahead(&next, &AtomicBool::new(false)));
        }
    });
    assert!(good_blob.is_verified());
    assert!(!bad_blob.is_verified());
    // The corrupt blob's consumer still meets the mismatch itself.
    let dest = tempfile::tempfile().unwrap();
    let e = bad_blob.copy_to_file(&dest, 0).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    // The verified one is copied whole.
    let n = good_blob.copy_to_file(&dest, 0).unwrap();
    let mut back = vec![0u8; usize::try_from(n).unwrap()];
    dest.read_exact_at(&mut back, 0).unwrap();
    assert!(back == good.layer_bytes);
}

#[test]
fn a_range_is_copied_only_from_a_verified_blob() {
    let f = Fixture::new();
    let good = f.add_image_with_layer(
        "amd64",
        (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect(),
    );
    let bad = f.add_image_with_layer("arm64", (0..(3u32 << 20)).map(|i| (i % 7) as u8).collect());
    f.write_index(vec![entry(&good, &[], true), entry(&bad, &[], true)]);
    let image = open(&f.path()).unwrap();
    let mut corrupt = bad.layer_bytes.clone();
    corrupt[(3 << 20) - 1] ^= 1;
    rewrite(&f.blob_path(&bad.layer), &corrupt);
    let good_blob = image.blob(&good.layer.digest).unwrap().clone();
    let bad_blob = image.blob(&bad.layer.digest).unwrap().clone();
    let size = good_blob.size();

    // A range of an unverified blob: the whole blob is verified first.
    let dest = tempfile::tempfile().unwrap();
    let (start, len) = (1_000_003, 1 << 20);
    assert_eq!(
        good_blob.copy_range_to_file(start, len, &dest, 7).unwrap(),
        len
    );
    assert!(good_blob.is_verified());
    let mut back = vec![0u8; len as usize];
    dest.read_exact_at(&mut back, 7).unwrap();
    assert!(back[..] == good.layer_bytes[start as usize..(start + len) as usize]);
    // Up to the last byte, and an empty range at the end, are fine.
    assert_eq!(
        good_blob.copy_range_to_file(size - 1, 1, &dest, 0).unwrap(),
        1
    );
    assert_eq!(good_blob.copy_range_to_file(size, 0, &dest, 0).unwrap(), 0);
    // From an archive too (the blob is a byte range of the tar file).
    let out = f.out("ranges.tar");
    f.pack(&out);
    let archive = open(&out).unwrap();
    let archived = archive.blob(&good.layer.digest).unwrap();
    let dest = tempfile::tempfile().unwrap();
    assert_eq!(
        archived.copy_range_to_file(start, len, &dest, 0).unwrap(),
        len
    );
    dest.read_exact_at(&mut back, 0).unwrap();
    assert!(back[..] == good.layer_bytes[start as usize..(start + len) as usize]);
    let dest = tempfile::tempfile().unwrap();

    // A range past the end, or one whose end overflows, is refused.
    for (start, len) in [(size - 1, 2), (size + 1, 0), (1, u64::MAX)] {
        let e = good_blob
            .copy_range_to_file(start, len, &dest, 0)
            .unwrap_err();
        assert!(matches!(e, Error::RangeOutside { .. }), "{e}");
        assert!(e.to_string().contains("run past its end"), "{e}");
    }

    // A corrupt blob: even a range before the damage is never written.
    let fresh = tempfile::tempfile().unwrap();
    let e = bad_blob.copy_range_to_file(0, 4096, &fresh, 0).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_eq!(fresh.metadata().unwrap().len(), 0);
    assert!(!bad_blob.is_verified());
}
