//! Copies of blobs and of ranges of blobs into files: hashed while
//! copied, `copy_file_range` once verified, nothing written from a blob
//! that does not match.

use std::fs;
use std::os::unix::fs::FileExt;

use crate::testutil::*;
use crate::{Error, open, sha256_digest};

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
