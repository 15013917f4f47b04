//! Tests of views kept lazily: the skeleton serves a header-only reader
//! without any decoder, every other byte is decompressed again exactly,
//! decoders are reused by ascending reads, and a source changed after the
//! view was made fails the check.

use crate::testutil::gzip;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use oci_spec::image::{Descriptor, MediaType};

use super::Inflated;
use crate::blob::Blob;
use crate::blob::storage::Data;
use crate::convert::{Budget, Converter};
use crate::sha256_digest;

/// A tar of files of many sizes, with PAX records and a GNU long name.
fn sample_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..200u32 {
        let size = (i as usize * 997) % 20_000;
        let data: Vec<u8> = (0..size).map(|j| (j as u32 * 31 + i) as u8).collect();
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_cksum();
        let name = if i % 50 == 7 {
            format!("{}/file{i}", "long".repeat(40))
        } else {
            format!("dir/file{i}")
        };
        if i % 30 == 3 {
            builder
                .append_pax_extensions([("comment", &b"pax here"[..])])
                .unwrap();
        }
        builder
            .append_data(&mut header, name, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// A layer blob stored in a temporary file (returned too, to damage it).
fn layer(data: &[u8]) -> (Blob, std::fs::File) {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(data).unwrap();
    let digest: oci_spec::image::Digest = sha256_digest(data).parse().unwrap();
    let descriptor = Descriptor::new(MediaType::ImageLayerGzip, data.len() as u64, digest);
    let handle = file.try_clone().unwrap();
    let blob = Blob::from_open_file(descriptor, file, "layer", "test", "layer").unwrap();
    (blob, handle)
}

/// The lazy view of `layer`.
fn view(converter: &Converter, layer: &Blob) -> Arc<Blob> {
    let converted = converter
        .view(layer, &Budget::unlimited())
        .unwrap()
        .unwrap();
    assert!(converted.blob.is_lazy());
    converted.blob.clone()
}

fn inflated(blob: &Blob) -> &Inflated {
    match &blob.data {
        Data::Inflated(inflated) => inflated,
        _ => panic!("not a lazy view"),
    }
}

#[test]
fn headers_and_skips_are_served_without_a_decoder() {
    let tar = sample_tar();
    let (layer, _file) = layer(&gzip(&tar));
    let converter = Converter::new();
    let view = view(&converter, &layer);
    assert_eq!(view.size(), tar.len() as u64);
    assert_eq!(view.descriptor().digest().to_string(), sha256_digest(&tar));
    let mut reader = view.open();
    let mut pos = 0usize;
    let mut entries = 0;
    loop {
        let mut block = [0u8; 512];
        reader.read_exact(&mut block).unwrap();
        assert_eq!(&block[..], &tar[pos..pos + 512], "header at {pos}");
        pos += 512;
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size().unwrap() as usize;
        let padded = size.next_multiple_of(512);
        let kind = header.entry_type();
        if kind.is_pax_local_extensions() || kind.is_gnu_longname() {
            let mut data = vec![0; padded];
            reader.read_exact(&mut data).unwrap();
            assert_eq!(data, &tar[pos..pos + padded]);
        } else {
            assert_eq!(reader.skip(padded as u64).unwrap(), padded as u64);
            entries += 1;
        }
        pos += padded;
    }
    assert_eq!(entries, 200);
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, &tar[pos..]);
    assert!(inflated(&view).idle().is_empty(), "a decoder was used");
}

#[test]
fn every_byte_reads_back_exactly() {
    let tar = sample_tar();
    let (layer, _file) = layer(&gzip(&tar));
    let view = view(&Converter::new(), &layer);
    assert_eq!(view.read_all(u64::MAX).unwrap(), tar);
    // Reads in odd sizes mix the skeleton and a decoder.
    let mut reader = view.open();
    let mut out = Vec::new();
    let mut buf = vec![0; 777];
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(out, tar);
    let copy = tempfile::tempfile().unwrap();
    view.copy_to_file(&copy, 3).unwrap();
    let mut written = vec![0; tar.len()];
    copy.read_exact_at(&mut written, 3).unwrap();
    assert_eq!(written, tar);
}

#[test]
fn reads_after_skips_into_file_bytes() {
    let tar = sample_tar();
    let (layer, _file) = layer(&gzip(&tar));
    let view = view(&Converter::new(), &layer);
    let mut reader = view.open();
    let mut pos = 0u64;
    for step in [700u64, 5_000, 1, 40_000, 123_457] {
        reader.skip(step).unwrap();
        pos += step;
        let mut buf = [0u8; 1000];
        reader.read_exact(&mut buf).unwrap();
        let at = pos as usize;
        assert_eq!(&buf[..], &tar[at..at + 1000], "at {pos}");
        pos += 1000;
    }
}

#[test]
fn ascending_ranges_reuse_one_decoder_and_a_backward_one_starts_again() {
    let tar = sample_tar();
    let (layer, _file) = layer(&gzip(&tar));
    let view = view(&Converter::new(), &layer);
    let dest = tempfile::tempfile().unwrap();
    let ranges = [
        (1_000u64, 3_000u64),
        (9_000, 20_000),
        (100_000, 7),
        (300_000, 1),
    ];
    for (start, len) in ranges {
        view.copy_range_to_file(start, len, &dest, 0).unwrap();
        let mut got = vec![0; len as usize];
        dest.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, &tar[start as usize..(start + len) as usize]);
        assert_eq!(
            inflated(&view).idle(),
            vec![start + len],
            "one decoder, reused"
        );
    }
    // File bytes (of the third entry), not a header.
    view.copy_range_to_file(2_600, 10, &dest, 0).unwrap();
    let mut idle = inflated(&view).idle();
    idle.sort_unstable();
    assert_eq!(
        idle,
        vec![2_610, 300_001],
        "a backward range starts a new decoder"
    );
    let mut ranges = view.ranges().unwrap();
    for (start, len) in [(200_000u64, 5_000usize), (2_000, 10), (250_000, 30_000)] {
        let mut got = vec![0; len];
        ranges.read_exact_at(start, &mut got).unwrap();
        assert_eq!(got, &tar[start as usize..start as usize + len]);
    }
    let mut past = [0u8; 2];
    assert!(
        ranges
            .read_exact_at(tar.len() as u64 - 1, &mut past)
            .is_err()
    );
    drop(ranges);
    view.check_source().unwrap();
}

#[test]
fn a_compressed_layer_that_is_not_a_tar_reads_back() {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| ((i * 7) ^ (i >> 5)) as u8)
        .collect();
    let (layer, _file) = layer(&gzip(&data));
    let view = view(&Converter::new(), &layer);
    assert_eq!(view.read_all(u64::MAX).unwrap(), data);
    let dest = tempfile::tempfile().unwrap();
    view.copy_range_to_file(123_456, 1_000, &dest, 0).unwrap();
    let mut got = vec![0; 1_000];
    dest.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(got, &data[123_456..124_456]);
}

#[test]
fn zstd_layers_are_views_too() {
    let tar = sample_tar();
    let (layer, _file) = layer(&zstd::encode_all(tar.as_slice(), 3).unwrap());
    let view = view(&Converter::new(), &layer);
    assert_eq!(view.read_all(u64::MAX).unwrap(), tar);
    assert_eq!(inflated(&view).skeleton().recorded() % 512, 0);
}

#[test]
fn the_skeleton_holds_the_headers_not_the_files() {
    let tar = sample_tar();
    let (layer, _file) = layer(&gzip(&tar));
    let view = view(&Converter::new(), &layer);
    let recorded = inflated(&view).skeleton().recorded();
    // 200 headers, a few PAX and long-name entries (header and data), the end.
    assert!(recorded >= 200 * 512, "{recorded}");
    assert!(recorded < 300 * 512 + (64 << 10), "{recorded}");
}

#[test]
fn a_source_changed_after_the_view_was_made_fails_the_check() {
    let tar = sample_tar();
    let compressed = gzip(&tar);
    let (layer, file) = layer(&compressed);
    let view = view(&Converter::new(), &layer);
    let dest = tempfile::tempfile().unwrap();
    view.copy_range_to_file(1_000, 100, &dest, 0).unwrap();
    view.check_source().unwrap();
    // The last byte (the gzip trailer's size) changes: decoding the start
    // still works, the hash does not.
    let last = compressed.len() as u64 - 1;
    file.write_all_at(&[compressed[last as usize] ^ 1], last)
        .unwrap();
    view.copy_range_to_file(2_600, 100, &dest, 0).unwrap();
    let e = view.check_source().unwrap_err().to_string();
    assert!(e.contains("changed since its view was made"), "{e}");
}

/// A header block for `name` of `size` bytes whose size field is written
/// by `size_field` (octal, base-256), its checksum set.
fn header_block(name: &str, kind: u8, size_field: [u8; 12]) -> [u8; 512] {
    let mut block = [0u8; 512];
    block[..name.len()].copy_from_slice(name.as_bytes());
    block[100..108].copy_from_slice(b"0000644\0");
    block[124..136].copy_from_slice(&size_field);
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    block
}

#[test]
fn the_walker_follows_base_256_sizes_and_pax_size_records() {
    let mut tar = Vec::new();
    // 1000 bytes, the size in base-256.
    let mut base256 = [0u8; 12];
    base256[0] = 0x80;
    base256[10..].copy_from_slice(&1000u16.to_be_bytes());
    tar.extend_from_slice(&header_block("a", b'0', base256));
    tar.extend(std::iter::repeat_n(7u8, 1024));
    // A PAX header whose `size` (3000) overrides the next header's (0).
    let record = b"13 size=3000\n";
    tar.extend_from_slice(&header_block("pax", b'x', *b"00000000015\0"));
    let mut data = record.to_vec();
    data.resize(512, 0);
    tar.extend_from_slice(&data);
    tar.extend_from_slice(&header_block("b", b'0', *b"00000000000\0"));
    tar.extend(std::iter::repeat_n(9u8, 3072));
    let last = tar.len();
    tar.extend_from_slice(&header_block("c", b'0', *b"00000000000\0"));
    tar.extend(std::iter::repeat_n(0u8, 1024));

    let mut walker = super::Walker::new(super::Recorder::new(tempfile::tempfile().unwrap()));
    for piece in tar.chunks(100) {
        walker.observe(piece);
    }
    let skeleton = walker.into_recorder().finish();
    let kept = |at: usize| {
        let mut block = [0u8; 512];
        skeleton.read_at(at as u64, &mut block).unwrap() == 512 && block[..] == tar[at..at + 512]
    };
    for at in [0, 1536, 2048, 2560, last, last + 512, last + 1024] {
        assert!(kept(at), "the block at {at} was not kept");
    }
    for at in [512, 1024, 3072, 5000] {
        assert!(!kept(at), "file bytes at {at} were kept");
    }
    assert_eq!(skeleton.recorded(), 512 * 4 + 512 + 1024);
}

#[test]
fn the_views_of_one_converter_keep_few_decoders_idle() {
    let tar = sample_tar();
    let converter = Converter::new();
    let dest = tempfile::tempfile().unwrap();
    let mut views = Vec::new();
    // Distinct layers (one more file each), three backward ranges per
    // view: each range leaves one more idle decoder behind.
    for n in 0..5u8 {
        let mut tar = tar.clone();
        tar.extend_from_slice(&[n; 1]);
        let (layer, file) = layer(&gzip(&tar));
        let view = view(&converter, &layer);
        for start in [300_000u64, 200_000, 100_000] {
            view.copy_range_to_file(start, 10, &dest, 0).unwrap();
        }
        views.push((view, layer, file));
    }
    let idle: usize = views.iter().map(|(v, _, _)| inflated(v).idle().len()).sum();
    assert_eq!(
        idle,
        super::IDLE_IN_ALL,
        "at most IDLE_IN_ALL idle decoders in all"
    );
    for (view, _, _) in &views {
        view.check_source().unwrap();
    }
    // Once the views have been checked, they hold none; new ones may.
    assert!(views.iter().all(|(v, _, _)| inflated(v).idle().is_empty()));
    // File bytes (of the third entry), not a header.
    views[0].0.copy_range_to_file(2_600, 10, &dest, 0).unwrap();
    assert_eq!(inflated(&views[0].0).idle().len(), 1);
}
