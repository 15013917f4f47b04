//! Tests of layer conversion.

use crate::testutil::gzip;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::Instant;

use oci_spec::image::{Descriptor, MediaType};

use super::tar_times::pax_record;
use super::*;
use crate::sha256_digest;

const EPOCH: u64 = 1_000_000;

/// A tar with a file newer than `EPOCH`, one older, and a PAX mtime.
fn sample_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, mtime) in [("new.txt", 2_000_000_000u64), ("old.txt", 100)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        builder
            .append_data(&mut header, name, &b"hello"[..])
            .unwrap();
    }
    builder
        .append_pax_extensions([("mtime", &b"1999999999.5"[..])])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(0);
    header.set_mtime(1_999_999_999);
    header.set_cksum();
    builder
        .append_data(&mut header, "pax.txt", &[][..])
        .unwrap();
    builder.into_inner().unwrap()
}

/// A layer held in memory (its media type says gzip whatever it holds).
pub(super) fn blob(data: Vec<u8>) -> Blob {
    let digest: oci_spec::image::Digest = sha256_digest(&data).parse().unwrap();
    let descriptor = Descriptor::new(MediaType::ImageLayerGzip, data.len() as u64, digest);
    Blob::new_in_memory(descriptor, data.into())
}

fn options(compression: Compression, force: bool) -> ConvertOptions {
    ConvertOptions {
        compression,
        level: None,
        force,
        rewrite_timestamp: None,
    }
}

fn bytes(converted: &Converted) -> Vec<u8> {
    converted.blob.read_all(u64::MAX).unwrap()
}

#[test]
fn gzip_to_zstd_and_back() {
    let tar = sample_tar();
    let converter = Converter::new();
    let zstd = converter
        .convert(
            &blob(gzip(&tar)),
            &options(Compression::Zstd, true),
            &Budget::unlimited(),
        )
        .unwrap()
        .unwrap();
    let data = bytes(&zstd);
    assert_eq!(Compression::sniff(&data), Compression::Zstd);
    assert_eq!(
        zstd.blob.descriptor().digest().to_string(),
        sha256_digest(&data)
    );
    assert_eq!(zstd.blob.size(), data.len() as u64);
    assert_eq!(
        zstd.blob.descriptor().media_type(),
        &MediaType::ImageLayerZstd
    );
    assert_eq!(zstd::decode_all(data.as_slice()).unwrap(), tar);
    assert_eq!(zstd.diff_id, sha256_digest(&tar));

    let plain = converter
        .convert(
            &zstd.blob,
            &options(Compression::Uncompressed, true),
            &Budget::unlimited(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(bytes(&plain), tar);
}

#[test]
fn compressed_layers_keep_their_compression_unless_forced() {
    let tar = sample_tar();
    let converter = Converter::new();
    let gz = blob(gzip(&tar));
    let unchanged = converter.convert(
        &gz,
        &options(Compression::Zstd, false),
        &Budget::unlimited(),
    );
    assert!(unchanged.unwrap().is_none());
    let compressed = converter
        .convert(
            &blob(tar.clone()),
            &options(Compression::Gzip, false),
            &Budget::unlimited(),
        )
        .unwrap()
        .unwrap();
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(bytes(&compressed).as_slice())
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, tar);
}

#[test]
fn a_conversion_is_computed_once() {
    let converter = Converter::new();
    let layer = blob(sample_tar());
    let a = converter.convert(
        &layer,
        &options(Compression::Gzip, false),
        &Budget::unlimited(),
    );
    let b = converter.convert(
        &layer,
        &options(Compression::Gzip, false),
        &Budget::unlimited(),
    );
    assert!(Arc::ptr_eq(&a.unwrap().unwrap(), &b.unwrap().unwrap()));
}

#[test]
fn timestamps_are_clamped_and_reproducible() {
    let opts = ConvertOptions {
        rewrite_timestamp: Some(EPOCH),
        ..options(Compression::Gzip, false)
    };
    let layer = blob(gzip(&sample_tar()));
    let first = Converter::new()
        .convert(&layer, &opts, &Budget::unlimited())
        .unwrap()
        .unwrap();
    let again = Converter::new()
        .convert(&layer, &opts, &Budget::unlimited())
        .unwrap()
        .unwrap();
    assert_eq!(
        first.blob.descriptor().digest(),
        again.blob.descriptor().digest()
    );
    let data = bytes(&first);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mtime = entry.header().mtime().unwrap();
        let pax_mtime = entry
            .pax_extensions()
            .unwrap()
            .and_then(|mut p| p.find(|r| r.as_ref().unwrap().key().unwrap() == "mtime"))
            .map(|r| r.unwrap().value().unwrap().to_owned());
        let path = entry.path().unwrap().display().to_string();
        seen.push((path, mtime, pax_mtime));
    }
    let epoch = Some(EPOCH.to_string());
    assert_eq!(
        seen,
        [
            ("new.txt".to_owned(), EPOCH, None),
            ("old.txt".to_owned(), 100, None),
            ("pax.txt".to_owned(), EPOCH, epoch),
        ]
    );
}

#[test]
fn corrupt_input_fails_naming_the_blob_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let converter = Converter::in_dir(dir.path().to_owned());
    let mut data = gzip(&sample_tar());
    data.truncate(data.len() / 2);
    let layer = blob(data);
    let err = converter
        .convert(
            &layer,
            &options(Compression::Zstd, true),
            &Budget::unlimited(),
        )
        .unwrap_err()
        .to_string();
    let digest = layer.descriptor().digest().to_string();
    assert!(
        err.contains(&digest) && err.contains("gzip to zstd"),
        "{err}"
    );
    let mut garbage = vec![0x28, 0xb5, 0x2f, 0xfd];
    garbage.extend_from_slice(b"not a zstd frame at all");
    let err = converter
        .convert(
            &blob(garbage),
            &options(Compression::Gzip, true),
            &Budget::unlimited(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("converting layer sha256:"), "{err}");
    // A conversion that worked leaves no name on disk either.
    let kept = converter
        .convert(
            &blob(gzip(&sample_tar())),
            &options(Compression::Uncompressed, true),
            &Budget::unlimited(),
        )
        .unwrap();
    assert!(kept.is_some());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_storage_fails_with_a_storage_error_that_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    let converter = Converter::in_dir(missing.clone());
    let layer = blob(gzip(&sample_tar()));
    let opts = options(Compression::Uncompressed, true);
    let err = converter
        .convert(&layer, &opts, &Budget::unlimited())
        .unwrap_err();
    assert!(matches!(err, crate::Error::ConvertStorage { .. }), "{err}");
    assert!(
        err.to_string().contains("creating a temporary file in"),
        "{err}"
    );
    // Not kept: once the storage is there, the same conversion works.
    std::fs::create_dir(&missing).unwrap();
    let done = converter
        .convert(&layer, &opts, &Budget::unlimited())
        .unwrap();
    assert!(done.is_some());
}

#[test]
fn levels_are_checked_per_algorithm() {
    assert!(Compression::Gzip.check_level(9).is_ok());
    assert!(Compression::Gzip.check_level(10).is_err());
    assert!(Compression::Zstd.check_level(22).is_ok());
    assert!(Compression::Zstd.check_level(0).is_err());
    assert!(Compression::Uncompressed.check_level(1).is_err());
    let converter = Converter::new();
    let opts = ConvertOptions {
        level: Some(42),
        ..options(Compression::Gzip, true)
    };
    let err = converter
        .convert(&blob(sample_tar()), &opts, &Budget::unlimited())
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

/// A gzip layer whose tar holds `size` zero bytes: a few KiB that
/// decompress to `size`.
fn bomb(size: u64) -> Blob {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "zeros", io::repeat(0).take(size))
        .unwrap();
    blob(gzip(&builder.into_inner().unwrap()))
}

#[test]
fn a_decompression_bomb_stops_at_the_scratch_limit_and_is_not_shared() {
    let converter = Converter::new();
    let layer = bomb(64 << 20);
    let small = Budget {
        scratch_bytes: 1 << 20,
        ..Budget::unlimited()
    };
    let err = converter
        .convert(&layer, &options(Compression::Uncompressed, true), &small)
        .unwrap_err();
    assert_eq!(err.limit(), Some(("scratch", 1 << 20)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("scratch limit of 1048576 bytes exceeded"),
        "{text}"
    );
    // To gzip the file written is small, but the tar read is not.
    let err = converter
        .convert(&layer, &options(Compression::Zstd, true), &small)
        .unwrap_err();
    assert!(err.to_string().contains("the uncompressed tar"), "{err}");
    // Another caller with room for it converts it.
    let plain = converter
        .convert(
            &layer,
            &options(Compression::Uncompressed, true),
            &Budget::unlimited(),
        )
        .unwrap()
        .unwrap();
    assert!(plain.blob.size() > 64 << 20);
}

#[test]
fn a_conversion_stops_at_its_callers_deadline() {
    let budget = Budget {
        deadline: Some(Instant::now()),
        timeout_secs: 7,
        ..Budget::unlimited()
    };
    let err = Converter::new()
        .convert(&bomb(1 << 20), &options(Compression::Zstd, true), &budget)
        .unwrap_err();
    assert_eq!(err.limit(), Some(("time", 7)), "{err}");
    assert!(
        err.to_string().contains("time limit of 7 s exceeded"),
        "{err}"
    );
}

#[test]
fn an_oversized_pax_header_is_refused_not_read() {
    let mut builder = tar::Builder::new(Vec::new());
    let value = vec![b'x'; (MAX_PAX_HEADER + 1) as usize];
    builder
        .append_pax_extensions([("comment", value.as_slice())])
        .unwrap();
    let layer = blob(gzip(&builder.into_inner().unwrap()));
    let opts = ConvertOptions {
        rewrite_timestamp: Some(EPOCH),
        ..options(Compression::Gzip, false)
    };
    let err = Converter::new()
        .convert(&layer, &opts, &Budget::unlimited())
        .unwrap_err();
    assert_eq!(err.limit(), None, "{err}");
    assert!(err.to_string().contains("PAX extended header"), "{err}");
}

#[test]
fn zstd_levels_cost_host_memory_as_zstd_estimates() {
    let level = |level| ConvertOptions {
        level: Some(level),
        ..options(Compression::Zstd, true)
    };
    assert!(
        level(22).host_memory() > 512 << 20,
        "{}",
        level(22).host_memory()
    );
    assert!(
        level(3).host_memory() < 256 << 20,
        "{}",
        level(3).host_memory()
    );
    assert!(level(19).host_memory() > level(3).host_memory());
}

#[test]
fn pax_records_count_their_own_length() {
    let mut out = Vec::new();
    pax_record(&mut out, b"mtime", b"1");
    assert_eq!(out, b"11 mtime=1\n");
    let mut out = Vec::new();
    // 98 bytes without the length: 2 digits would make 100, so 3: 101.
    pax_record(&mut out, b"path", &[b'a'; 91]);
    assert_eq!(out.len(), 101);
    assert!(out.starts_with(b"101 path="));
}
