//! Blobs verified as they are read: a changed byte or a short file fails
//! the read, a verified blob is read again without hashing.

use std::fs;
use std::io::Read;

use super::read_to_end;
use crate::testutil::*;
use crate::{Error, open, sha256_digest};

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
