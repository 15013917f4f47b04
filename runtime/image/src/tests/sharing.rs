//! One verification shared by concurrent consumers: copies and shared
//! readers of one blob, verifying ahead of the consumers, and the types
//! that cross threads.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;

use crate::testutil::*;
use crate::{Blob, BlobReader, Error, Image, open};

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
