//! Tests of a conversion on two threads: the same bytes as on one, and the
//! first failure of either stage as the answer.

use std::fs::File;
use std::io::{self, Write};

use super::pipeline::{self, CHUNKS_HELD};
use super::tar_times::rewrite_timestamps;
use super::tests::blob;
use super::*;
use crate::chunk::CHUNK_SIZE;
use crate::sha256_digest;
use crate::testutil::gzip;

const EPOCH: u64 = 1_000_000;

/// A tar of a few MiB (several chunks) of compressible text: three large
/// files and a small one, all newer than `EPOCH`.
fn text_tar() -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "layer ", "blob ", "zstd ", "gzip\n", "tar ", "a ", "the ", "of ",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, size) in [("a", 1_500_000), ("b", 1_700_000), ("c", 900_000), ("d", 7)] {
        let mut data = Vec::with_capacity(size + 8);
        while data.len() < size {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            data.extend_from_slice(WORDS[(state >> 61) as usize].as_bytes());
        }
        data.truncate(size);
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_mtime(2_000_000_000);
        header.set_cksum();
        builder
            .append_data(&mut header, name, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// A writer that passes everything through as it is given (as the
/// single-threaded conversion's `Hashing` did).
struct Through<W>(W);

impl<W: Write> Write for Through<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `layer` converted as the conversion on one thread did: decompressed,
/// rewritten when `epoch` is given and compressed again in the pieces
/// `io::copy` (or the tar builder) moved.
fn one_thread(
    layer: &Blob,
    (source, target, level): (Compression, Compression, Option<i32>),
    epoch: Option<u64>,
) -> Vec<u8> {
    fn copy<W: Write>(layer: &Blob, source: Compression, epoch: Option<u64>, out: W) -> W {
        let mut decoded = decoding(layer.open_shared(), source).unwrap();
        let mut out = Through(out);
        match epoch {
            Some(epoch) => rewrite_timestamps(&mut decoded, &mut out, epoch).unwrap(),
            None => {
                io::copy(&mut decoded, &mut out).unwrap();
            }
        }
        out.0
    }
    match target {
        Compression::Uncompressed => copy(layer, source, epoch, Vec::new()),
        Compression::Gzip => {
            let level = flate2::Compression::new(level.map_or(6, |l| l as u32));
            let encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            copy(layer, source, epoch, encoder).finish().unwrap()
        }
        Compression::Zstd => {
            let encoder = zstd::stream::write::Encoder::new(Vec::new(), level.unwrap_or(3));
            copy(layer, source, epoch, encoder.unwrap())
                .finish()
                .unwrap()
        }
    }
}

#[test]
fn two_stages_write_the_bytes_one_thread_wrote() {
    let tar = text_tar();
    assert!(tar.len() > 3 * CHUNK_SIZE);
    let mut clamped = Vec::new();
    rewrite_timestamps(tar.as_slice(), &mut clamped, EPOCH).unwrap();
    assert_ne!(clamped, tar);
    let sources = [
        (Compression::Gzip, gzip(&tar)),
        (
            Compression::Zstd,
            zstd::encode_all(tar.as_slice(), 3).unwrap(),
        ),
    ];
    let targets = [
        (Compression::Zstd, None),
        (Compression::Zstd, Some(1)),
        (Compression::Zstd, Some(12)),
        (Compression::Gzip, None),
        (Compression::Gzip, Some(0)),
        (Compression::Gzip, Some(1)),
        (Compression::Gzip, Some(9)),
        (Compression::Uncompressed, None),
    ];
    let converter = Converter::new();
    for (source, layer) in &sources {
        let layer = blob(layer.clone());
        for (target, level) in targets {
            for epoch in [None, Some(EPOCH)] {
                let options = ConvertOptions {
                    compression: target,
                    level,
                    force: true,
                    rewrite_timestamp: epoch,
                };
                let case = format!("{source:?} to {target:?} {level:?} {epoch:?}");
                let Some(converted) = converter
                    .convert(&layer, &options, &Budget::unlimited())
                    .unwrap()
                else {
                    assert_eq!((*source, epoch), (target, None), "{case}");
                    continue;
                };
                let expected_tar = if epoch.is_some() { &clamped } else { &tar };
                let expected = one_thread(&layer, (*source, target, level), epoch);
                let data = converted.blob.read_all(u64::MAX).unwrap();
                assert!(data == expected, "{case}: not the same bytes");
                assert_eq!(
                    converted.blob.descriptor().digest().to_string(),
                    sha256_digest(&expected),
                    "{case}"
                );
                assert_eq!(converted.diff_id, sha256_digest(expected_tar), "{case}");
            }
        }
    }
}

#[test]
fn a_failure_of_stage_b_stops_stage_a_and_is_the_answer() {
    let mut sent = 0;
    let err = pipeline::run(
        false,
        |feed| {
            // Would feed 1000 chunks if nothing stopped it.
            for _ in 0..1000 {
                feed.write_all(&vec![7; CHUNK_SIZE])?;
                sent += 1;
            }
            Ok(())
        },
        |mut drain| {
            drain.next_chunk()?;
            Err::<(), _>(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
    assert_eq!(err.to_string(), "disk full");
    assert!(sent <= CHUNKS_HELD, "stage A went on for {sent} chunks");
}

#[test]
fn a_failure_of_stage_a_stops_stage_b_and_is_the_answer() {
    let mut drained = 0;
    let err = pipeline::run(
        true,
        |feed| {
            feed.write_all(&[1; 3 * CHUNK_SIZE])?;
            Err(io::Error::new(io::ErrorKind::InvalidData, "bad source"))
        },
        |mut drain| {
            while drain.next_chunk()?.is_some() {
                drained += 1;
            }
            Ok(())
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert_eq!(err.to_string(), "bad source");
    assert_eq!(drained, 3);
}

#[test]
fn a_full_disk_under_stage_b_is_a_storage_error() {
    let full = File::options().write(true).open("/dev/full").unwrap();
    let layer = blob(gzip(&text_tar()));
    let err = transcode(
        layer.open_shared(),
        (Compression::Gzip, Compression::Uncompressed, None),
        None,
        full,
        &Budget::unlimited(),
    )
    .err()
    .unwrap();
    assert!(is_storage_full(&err), "{err}");
}

#[test]
fn a_budget_too_small_for_the_converted_file_stops_stage_b() {
    // Stored deflate blocks: a little more than the tar, which itself fits.
    let tar = text_tar();
    let budget = Budget {
        scratch_bytes: tar.len() as u64,
        ..Budget::unlimited()
    };
    let options = ConvertOptions {
        compression: Compression::Gzip,
        level: Some(0),
        force: true,
        rewrite_timestamp: None,
    };
    let err = Converter::new()
        .convert(&blob(tar.clone()), &options, &budget)
        .unwrap_err();
    assert_eq!(err.limit(), Some(("scratch", tar.len() as u64)), "{err}");
    assert!(err.to_string().contains("the converted file"), "{err}");
}

#[test]
fn a_truncated_source_fails_with_its_decoders_error() {
    let mut data = gzip(&text_tar());
    data.truncate(data.len() / 2);
    let layer = blob(data);
    let mut decoded = decoding(layer.open_shared(), Compression::Gzip).unwrap();
    let expected = io::copy(&mut decoded, &mut io::sink()).unwrap_err();
    let err = Converter::new()
        .convert(
            &layer,
            &ConvertOptions {
                compression: Compression::Zstd,
                level: None,
                force: true,
                rewrite_timestamp: None,
            },
            &Budget::unlimited(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with(&format!("gzip to zstd: {expected}")),
        "{err}"
    );
}
