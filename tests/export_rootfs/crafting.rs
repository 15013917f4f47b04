//! Crafted images: layers of raw tar entries (hostile ones included) on
//! top of the single-platform sample, zstd frames and provenance
//! attestations added to a copy of the sample.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// One tar entry for a crafted layer; the path is written as raw bytes, so
/// it may hold `..` or start with `/`.
pub(crate) struct Raw<'a> {
    pub(super) path: &'a str,
    pub(super) kind: tar::EntryType,
    pub(super) link: Option<&'a str>,
    pub(super) data: &'a [u8],
    pub(super) mode: u32,
    pub(super) device: (u32, u32),
}

/// A regular file entry (mode 0644) holding `data`.
pub(crate) fn file<'a>(path: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        path,
        kind: tar::EntryType::Regular,
        link: None,
        data,
        mode: 0o644,
        device: (0, 0),
    }
}

pub(super) fn dir(path: &str) -> Raw<'_> {
    Raw {
        path,
        kind: tar::EntryType::Directory,
        link: None,
        data: b"",
        mode: 0o755,
        device: (0, 0),
    }
}

pub(super) fn symlink<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        kind: tar::EntryType::Symlink,
        link: Some(target),
        ..file(path, b"")
    }
}

pub(super) fn hardlink<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        kind: tar::EntryType::Link,
        link: Some(target),
        ..file(path, b"")
    }
}

/// A layer tar of `entries` (mtime 2024-01-02, root).
pub(crate) fn layer_tar(entries: &[Raw]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        // Names that fit are written raw (hostile ones included); longer
        // ones get a GNU long-name entry from the builder.
        let long = e.path.len() > 100;
        if !long {
            let name = &mut header.as_old_mut().name;
            name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        }
        header.set_entry_type(e.kind);
        header.set_size(e.data.len() as u64);
        header.set_mode(e.mode);
        header.set_mtime(1_704_153_600);
        header.set_uid(0);
        header.set_gid(0);
        if let Some(link) = e.link {
            header.set_link_name(link).expect("a link name");
        }
        if e.device != (0, 0) {
            header.set_device_major(e.device.0).unwrap();
            header.set_device_minor(e.device.1).unwrap();
        }
        if long {
            builder
                .append_data(&mut header, e.path, e.data)
                .expect("append an entry with a long name");
            continue;
        }
        header.set_cksum();
        builder.append(&header, e.data).expect("append an entry");
    }
    builder.into_inner().expect("finish the tar")
}

/// How crafted layers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    /// gzip (`tar+gzip`): the host decompresses it (`uncompressed-layers`).
    Gzip,
    /// An uncompressed tar: `local` has the host copy file bytes out of it.
    Plain,
}

/// Adds `layers` (plain tars, stored as `packing` says) on top of the
/// single-platform image in `dir`.
#[track_caller]
fn add_layers(dir: &Path, layers: &[Vec<u8>], packing: Packing) {
    let blobs: Vec<(Vec<u8>, &[u8], &str)> = layers
        .iter()
        .map(|tar| match packing {
            Packing::Gzip => {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(tar).unwrap();
                (gz.finish().unwrap(), tar.as_slice(), MT_LAYER_GZIP)
            }
            Packing::Plain => (tar.clone(), tar.as_slice(), MT_LAYER_PLAIN),
        })
        .collect();
    add_layer_blobs(dir, &blobs);
}

/// Adds layers `(blob, uncompressed tar, media type)` on top of the
/// single-platform image in `dir` (its `index.json` points at one
/// manifest): new blobs, a new config with their diff IDs, a new manifest,
/// a new `index.json`.
#[track_caller]
pub(crate) fn add_layer_blobs(dir: &Path, layers: &[(Vec<u8>, &[u8], &str)]) {
    let layout = Layout::open(dir);
    let files = layout.files();
    let mut root = files.root();
    let mut manifest = files.blob_json(str_at(&root, "digest"));
    let mut config = files.blob_json(str_at(&manifest["config"], "digest"));
    for (blob, tar, media_type) in layers {
        let (digest, size) = layout.add_blob(blob);
        manifest["layers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "mediaType": media_type, "digest": digest, "size": size }));
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(json!(sha256_digest(tar)));
    }
    let (digest, size) = layout.add_blob(&serde_json::to_vec(&config).unwrap());
    manifest["config"]["digest"] = json!(digest);
    manifest["config"]["size"] = json!(size);
    let (digest, size) = layout.add_blob(&serde_json::to_vec(&manifest).unwrap());
    root["digest"] = json!(digest);
    root["size"] = json!(size);
    layout.write_index_json(
        &json!({ "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [root] }),
    );
}

/// The single-platform amd64 sample (tag `latest`) with `layers` on top,
/// gzipped.
pub(crate) fn crafted(tmp: &Path, layers: &[Vec<u8>]) -> PathBuf {
    crafted_as(tmp, "input", layers, Packing::Gzip)
}

/// The single-platform amd64 sample (tag `latest`) in `tmp/name` with
/// `layers` on top, stored as `packing` says.
pub(super) fn crafted_as(tmp: &Path, name: &str, layers: &[Vec<u8>], packing: Packing) -> PathBuf {
    let input = single_platform_sample(tmp, name, "amd64", "latest");
    add_layers(&input, layers, packing);
    input
}

/// `umoci unpack --rootless` of `input:latest`: its rootfs.
#[track_caller]
pub(super) fn umoci_rootfs(tmp: &Path, input: &Path) -> PathBuf {
    let bundle = tmp.join("bundle");
    let image = format!("{}:latest", path_str(input));
    umoci(&["unpack", "--rootless", "--image", &image, path_str(&bundle)]);
    bundle.join("rootfs")
}

/// Exports `input` with the outputs `specs`; asserts success.
#[track_caller]
pub(super) fn export_ok(input: &Path, specs: &[String]) -> Run {
    let run = export(input.as_os_str(), specs, None);
    run.assert_success();
    run
}

/// A valid zstd frame holding `data` in raw (stored) blocks: what a
/// decoder must read, without needing a zstd encoder here.
pub(crate) fn zstd_raw_blocks(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 128 << 10;
    // Magic, frame header descriptor (no size, no checksum, no dictionary,
    // not single-segment), window descriptor (2 MiB).
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(MAX_BLOCK).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        // Block header: last-block bit, type 0 (raw), size.
        let header = last | ((chunk.len() as u32) << 3);
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(chunk);
    }
    out
}

/// Adds a BuildKit attestation manifest with an SLSA provenance statement
/// for each platform of the sample copy in `dir`; returns platform
/// architecture → statement bytes.
pub(super) fn add_provenance(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let layout = Layout::open(dir);
    let files = layout.files();
    let index_digest = str_at(&files.root(), "digest").to_owned();
    let index = files.blob_json(&index_digest);
    let mut statements = BTreeMap::new();
    let mut entries = Vec::new();
    for desc in array_at(&index, "manifests") {
        let arch = str_at(&desc["platform"], "architecture").to_owned();
        let statement = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{ "name": "pkg:docker/outport/sample", "digest": { "sha256": digest_hex(str_at(desc, "digest")) } }],
            "predicate": { "builder": { "id": format!("test-{arch}") } },
        }))
        .unwrap();
        let (s_digest, s_size) = layout.add_blob(&statement);
        let config = serde_json::to_vec(&json!({
            "architecture": "unknown", "os": "unknown", "config": {},
            "rootfs": { "type": "layers", "diff_ids": [sha256_digest(&statement)] },
        }))
        .unwrap();
        let (c_digest, c_size) = layout.add_blob(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": { "mediaType": MT_CONFIG, "digest": c_digest, "size": c_size },
            "layers": [{
                "mediaType": "application/vnd.in-toto+json",
                "digest": s_digest,
                "size": s_size,
                "annotations": { "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2" },
            }],
        }))
        .unwrap();
        let (m_digest, m_size) = layout.add_blob(&manifest);
        entries.push(json!({
            "mediaType": MT_MANIFEST,
            "digest": m_digest,
            "size": m_size,
            "annotations": {
                "vnd.docker.reference.digest": str_at(desc, "digest"),
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": { "architecture": "unknown", "os": "unknown" },
        }));
        statements.insert(arch, statement);
    }
    layout.rewrite_json_blob(&index_digest, |index: &mut Value| {
        index["manifests"].as_array_mut().unwrap().extend(entries);
    });
    statements
}
