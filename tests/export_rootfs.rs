//! The `tar` and `local` exporters end to end: the image's root filesystem
//! compared with `umoci unpack --rootless` of the same image, multi-platform
//! layouts (split and merged), the tar stream against the unpacked
//! directory, provenance statements, and hostile layers (crafted tarballs)
//! that must not touch anything outside the destination.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------------------
// Snapshots of a root filesystem (a directory or a tar)
// ---------------------------------------------------------------------------

/// What a path of a root filesystem is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Dir,
    File(Vec<u8>),
    /// The symlink's target as a path from the root (`..` stops at the
    /// root), so `/etc/x` and `../etc/x` at `a/l` compare equal.
    Symlink(String),
    Other,
}

/// A root filesystem: path → item, the groups of hard-linked paths, and
/// each path's mode and mtime.
#[derive(Debug, Default)]
struct Snapshot {
    items: BTreeMap<String, Item>,
    links: BTreeSet<Vec<String>>,
    modes: BTreeMap<String, u32>,
    mtimes: BTreeMap<String, u64>,
}

/// Where symlink `target` at `link` points, from the root.
fn from_root(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

impl Snapshot {
    #[track_caller]
    fn of_dir(root: &Path) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        walk(root, root, &mut snap, &mut inodes);
        snap.links = inodes
            .into_values()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        snap
    }

    /// The tree under `prefix` (`linux_amd64/`, or `""`) of a tar.
    #[track_caller]
    fn of_tar(bytes: &[u8], prefix: &str) -> Snapshot {
        let mut snap = Snapshot::default();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut archive = tar::Archive::new(bytes);
        for entry in archive.entries().expect("read the tar") {
            let mut entry = entry.expect("a tar entry");
            let path = entry.path().expect("a path").to_str().unwrap().to_owned();
            let path = path.trim_end_matches('/');
            let Some(path) = path.strip_prefix(prefix) else {
                continue;
            };
            if path.is_empty() {
                continue;
            }
            let path = path.to_owned();
            let header = entry.header().clone();
            let item = match header.entry_type() {
                tar::EntryType::Directory => Item::Dir,
                tar::EntryType::Regular => {
                    let mut data = Vec::new();
                    entry.read_to_end(&mut data).unwrap();
                    Item::File(data)
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name().unwrap().unwrap();
                    Item::Symlink(from_root(&path, target.to_str().unwrap()))
                }
                tar::EntryType::Link => {
                    let target = entry.link_name().unwrap().unwrap();
                    let target = target.to_str().unwrap();
                    let target = target.strip_prefix(prefix).expect("a link inside the tree");
                    groups
                        .entry(target.to_owned())
                        .or_insert_with(|| vec![target.to_owned()])
                        .push(path.clone());
                    snap.items[target].clone()
                }
                _ => Item::Other,
            };
            snap.modes.insert(path.clone(), header.mode().unwrap());
            snap.mtimes.insert(path.clone(), header.mtime().unwrap());
            assert!(
                snap.items.insert(path.clone(), item).is_none(),
                "{path} is twice in the tar"
            );
        }
        snap.links = groups
            .into_values()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        snap
    }

    fn paths(&self) -> Vec<&str> {
        self.items.keys().map(String::as_str).collect()
    }
}

fn walk(root: &Path, dir: &Path, snap: &mut Snapshot, inodes: &mut BTreeMap<u64, Vec<String>>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        let item = if kind.is_dir() {
            walk(root, &path, snap, inodes);
            Item::Dir
        } else if kind.is_file() {
            inodes.entry(meta.ino()).or_default().push(rel.clone());
            Item::File(fs::read(&path).unwrap())
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            Item::Symlink(from_root(&rel, target.to_str().unwrap()))
        } else {
            Item::Other
        };
        snap.modes
            .insert(rel.clone(), meta.permissions().mode() & 0o7777);
        snap.mtimes.insert(rel.clone(), meta.mtime() as u64);
        snap.items.insert(rel, item);
    }
}

/// Asserts two snapshots hold the same paths, kinds, contents, symlink
/// targets and hard links; and the same mtimes for files and symlinks.
#[track_caller]
fn assert_same_tree(ours: &Snapshot, reference: &Snapshot, what: &str) {
    assert_eq!(ours.paths(), reference.paths(), "{what}: paths differ");
    for (path, item) in &reference.items {
        assert_eq!(&ours.items[path], item, "{what}: {path} differs");
        if !matches!(item, Item::Dir) {
            assert_eq!(
                ours.mtimes[path], reference.mtimes[path],
                "{what}: mtime of {path}"
            );
        }
    }
    assert_eq!(ours.links, reference.links, "{what}: hard links differ");
}

// ---------------------------------------------------------------------------
// Crafted images
// ---------------------------------------------------------------------------

/// One tar entry for a crafted layer; the path is written as raw bytes, so
/// it may hold `..` or start with `/`.
pub(crate) struct Raw<'a> {
    path: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
    mode: u32,
    device: (u32, u32),
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

fn dir(path: &str) -> Raw<'_> {
    Raw {
        path,
        kind: tar::EntryType::Directory,
        link: None,
        data: b"",
        mode: 0o755,
        device: (0, 0),
    }
}

fn symlink<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        kind: tar::EntryType::Symlink,
        link: Some(target),
        ..file(path, b"")
    }
}

fn hardlink<'a>(path: &'a str, target: &'a str) -> Raw<'a> {
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
enum Packing {
    /// gzip (`tar+gzip`): the exporters decompress it in the guest.
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
fn add_layer_blobs(dir: &Path, layers: &[(Vec<u8>, &[u8], &str)]) {
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
fn crafted_as(tmp: &Path, name: &str, layers: &[Vec<u8>], packing: Packing) -> PathBuf {
    let input = single_platform_sample(tmp, name, "amd64", "latest");
    add_layers(&input, layers, packing);
    input
}

/// `umoci unpack --rootless` of `input:latest`: its rootfs.
#[track_caller]
fn umoci_rootfs(tmp: &Path, input: &Path) -> PathBuf {
    let bundle = tmp.join("bundle");
    let image = format!("{}:latest", path_str(input));
    umoci(&["unpack", "--rootless", "--image", &image, path_str(&bundle)]);
    bundle.join("rootfs")
}

/// Exports `input` with the outputs `specs`; asserts success.
#[track_caller]
fn export_ok(input: &Path, specs: &[String]) -> Run {
    let run = export(input.as_os_str(), specs, None);
    run.assert_success();
    run
}

// ---------------------------------------------------------------------------
// Correctness
// ---------------------------------------------------------------------------

#[test]
fn single_platform_matches_umoci() {
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "amd64", "latest");
    let local = tmp.path().join("local");
    let tarball = tmp.path().join("rootfs.tar");
    let metadata = tmp.path().join("metadata.json");
    let run = export(
        input.as_os_str(),
        &[
            format!("type=local,dest={},id=local", path_str(&local)),
            format!("type=tar,dest={},id=tar", path_str(&tarball)),
        ],
        Some(&metadata),
    );
    run.assert_success();
    let reference = Snapshot::of_dir(&umoci_rootfs(tmp.path(), &input));
    assert!(reference.items.contains_key("app/hi"), "{reference:?}");
    assert!(!reference.items.contains_key("usr/share/sample/README"));

    let unpacked = Snapshot::of_dir(&local);
    assert_same_tree(&unpacked, &reference, "local");
    let from_tar = Snapshot::of_tar(&fs::read(&tarball).unwrap(), "");
    assert_same_tree(&from_tar, &reference, "tar");
    // A tar records modes as the layers have them (umoci applies them);
    // local sets them through the host's files.set-mode.
    assert_eq!(from_tar.modes, reference.modes, "tar modes");
    assert_eq!(from_tar.modes["app/hello"] & 0o111, 0o111);
    let modes_of = |snap: &Snapshot| -> BTreeMap<String, u32> {
        snap.modes
            .iter()
            .filter(|(path, _)| matches!(snap.items[path.as_str()], Item::Dir | Item::File(_)))
            .map(|(path, mode)| (path.clone(), *mode))
            .collect()
    };
    assert_eq!(modes_of(&unpacked), modes_of(&reference), "local modes");

    let metadata = read_json(&metadata);
    assert_metadata_valid(&tmp.path().join("metadata.json"));
    let root = LayoutFiles::from_dir(&input).root();
    for id in ["local", "tar"] {
        assert_eq!(
            exporter_entry(&metadata, id)["response"]["containerimage.digest"],
            root["digest"],
            "{metadata:#}"
        );
    }
}

#[test]
fn whiteouts_opaque_dirs_and_links_match_umoci() {
    let tmp = tempdir();
    let long = format!("long/{}.txt", "n".repeat(150));
    let lower = layer_tar(&[
        file(&long, b"a file with a 159-byte path"),
        dir("opq/"),
        file("opq/a", b"a"),
        dir("opq/sub/"),
        file("opq/sub/deep", b"deep"),
        file("gone", b"gone"),
        file("f", b"shared bytes"),
        hardlink("f-link", "f"),
        hardlink("f-link2", "/f"),
        symlink("abs", "/etc/os-release"),
        symlink("rel", "../etc/os-release"),
        dir("wdir/"),
        file("wdir/x", b"x"),
        file("wdir/y", b"y"),
        dir("becomes-file/"),
        file("becomes-file/inner", b"i"),
        file("replaced", b"old"),
        symlink("dirlink", "wdir"),
    ]);
    let upper = layer_tar(&[
        dir("opq/"),
        file("opq/.wh..wh..opq", b""),
        file("opq/c", b"c"),
        file(".wh.gone", b""),
        file(".wh.f", b""),
        file("wdir/.wh.x", b""),
        file("becomes-file", b"now a file"),
        file("replaced", b"new"),
        file("usr/share/sample/.wh.NOTES", b""),
        file("dirlink/through-link", b"written through a symlinked dir"),
    ]);
    // Gzipped layers are read in the guest; plain ones have the host copy
    // each file's bytes out of the layer: both give the same tree.
    for packing in [Packing::Gzip, Packing::Plain] {
        let name = format!("{packing:?}");
        let tmp = mkdir(tmp.path(), &name);
        let input = crafted_as(&tmp, "input", &[lower.clone(), upper.clone()], packing);
        let local = tmp.join("local");
        let tarball = tmp.join("rootfs.tar");
        export_ok(
            &input,
            &[
                format!("type=local,dest={}", path_str(&local)),
                format!("type=tar,dest={}", path_str(&tarball)),
            ],
        );
        let reference = Snapshot::of_dir(&umoci_rootfs(&tmp, &input));
        let ours = Snapshot::of_dir(&local);
        assert_same_tree(&ours, &reference, &format!("local ({name})"));
        assert_same_tree(
            &Snapshot::of_tar(&fs::read(&tarball).unwrap(), ""),
            &reference,
            "tar",
        );
        // What the layers meant, spelled out.
        assert_eq!(ours.items["opq/c"], Item::File(b"c".to_vec()));
        assert_eq!(
            ours.items[&long],
            Item::File(b"a file with a 159-byte path".to_vec())
        );
        assert!(!ours.items.contains_key("opq/a") && !ours.items.contains_key("opq/sub"));
        assert!(!ours.items.contains_key("gone") && !ours.items.contains_key("f"));
        assert_eq!(ours.items["f-link"], Item::File(b"shared bytes".to_vec()));
        assert!(
            ours.links
                .contains(&vec!["f-link".to_owned(), "f-link2".to_owned()])
        );
        assert_eq!(
            ours.items["abs"],
            Item::Symlink("etc/os-release".to_owned())
        );
        assert_eq!(
            ours.items["becomes-file"],
            Item::File(b"now a file".to_vec())
        );
        assert!(!ours.items.contains_key("usr/share/sample/NOTES"));
        assert_eq!(
            ours.items["wdir/through-link"],
            Item::File(b"written through a symlinked dir".to_vec())
        );
        // No symlink of the output points outside it.
        let abs = fs::read_link(local.join("abs")).unwrap();
        assert!(abs.is_relative(), "{}", abs.display());
    }
}

#[test]
fn multi_platform_split_and_merged() {
    let tmp = tempdir();
    let input = sample_image();
    let split = tmp.path().join("split");
    let merged = tmp.path().join("merged");
    let split_tar = tmp.path().join("split.tar");
    let merged_tar = tmp.path().join("merged.tar");
    let one = tmp.path().join("one");
    export_ok(
        &input,
        &[
            format!("type=local,dest={}", path_str(&split)),
            format!("type=local,dest={},platform-split=false", path_str(&merged)),
            format!("type=tar,dest={}", path_str(&split_tar)),
            format!(
                "type=tar,dest={},platform-split=false",
                path_str(&merged_tar)
            ),
            format!("type=local,dest={},platform=linux/arm64", path_str(&one)),
        ],
    );
    assert_eq!(dir_names(&split), ["linux_amd64", "linux_arm64_v8"]);
    let split_tar = fs::read(&split_tar).unwrap();
    for (sub, platform) in [
        ("linux_amd64", "linux/amd64\n"),
        ("linux_arm64_v8", "linux/arm64/v8\n"),
    ] {
        let tree = Snapshot::of_dir(&split.join(sub));
        assert_eq!(
            tree.items["app/platform.txt"],
            Item::File(platform.as_bytes().to_vec())
        );
        assert!(!tree.items.contains_key("usr/share/sample/README"));
        assert_same_tree(
            &Snapshot::of_tar(&split_tar, &format!("{sub}/")),
            &tree,
            sub,
        );
    }
    // Merged: one tree, the later platform (arm64) wins.
    let tree = Snapshot::of_dir(&merged);
    assert_eq!(
        tree.items["app/platform.txt"],
        Item::File(b"linux/arm64/v8\n".to_vec())
    );
    assert!(tree.items.contains_key("etc/os-release"));
    assert_same_tree(
        &Snapshot::of_tar(&fs::read(&merged_tar).unwrap(), ""),
        &tree,
        "merged tar",
    );
    // platform= picks one: its files at the top.
    assert_same_tree(
        &Snapshot::of_dir(&one),
        &Snapshot::of_dir(&split.join("linux_arm64_v8")),
        "platform=linux/arm64",
    );

    let run = export(
        input.as_os_str(),
        &[format!(
            "type=local,dest={},platform=linux/s390x",
            path_str(&tmp.path().join("none"))
        )],
        None,
    );
    run.assert_code(1);
    run.assert_error(&["platform"], &["linux/s390x"]);
}

#[test]
fn zstd_and_plain_layers() {
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "amd64", "latest");
    let plain = layer_tar(&[file("plain.txt", b"plain")]);
    let zstd_tar = layer_tar(&[file("zstd.txt", b"zstd")]);
    add_layer_blobs(
        &input,
        &[
            (plain.clone(), &plain, MT_LAYER_PLAIN),
            (
                zstd_raw_blocks(&zstd_tar),
                &zstd_tar,
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        ],
    );

    let local = tmp.path().join("local");
    export_ok(&input, &[format!("type=local,dest={}", path_str(&local))]);
    assert_eq!(fs::read(local.join("plain.txt")).unwrap(), b"plain");
    assert_eq!(fs::read(local.join("zstd.txt")).unwrap(), b"zstd");
}

/// An uncompressed layer whose bytes do not match its digest: `local`
/// (which has the host copy file bytes straight out of such a layer) fails
/// naming the layer and writes nothing, whether the damage is in a file's
/// bytes or in the padding after the tar's end, which the guest never
/// reads as an entry.
#[test]
fn corrupt_plain_layer_writes_nothing() {
    let tmp = tempdir();
    let big = vec![7u8; 3 << 20];
    let tar = layer_tar(&[file("big.bin", &big), file("small.txt", b"small")]);
    for (name, at) in [("in-file", 1 << 20), ("in-padding", tar.len() - 1)] {
        let tmp = mkdir(tmp.path(), name);
        let input = crafted_as(&tmp, "input", std::slice::from_ref(&tar), Packing::Plain);
        let layout = Layout::open(&input);
        let digest = sha256_digest(&tar);
        let mut bad = tar.clone();
        bad[at] ^= 0xff;
        fs::write(layout.blob_path(&digest), &bad).unwrap();
        let dest = tmp.join("out").join("rootfs");
        let run = export(
            input.as_os_str(),
            &[format!("type=local,dest={}", path_str(&dest))],
            None,
        );
        run.assert_code(1);
        run.assert_error(&[short(&digest)], &["mismatch"]);
        assert!(!dest.exists(), "{name}: {} was left", dest.display());
    }
}

/// A layer that ends inside a file's bytes (its digest is that of the cut
/// bytes, so only the tar is wrong): `local` and `tar` fail naming the
/// layer and write nothing, whether the layer is gzipped or not.
#[test]
fn layer_ending_inside_a_file_fails() {
    let tmp = tempdir();
    let whole = layer_tar(&[file("first.txt", b"first"), file("cut.bin", &[9u8; 10_000])]);
    // Two headers and first.txt's block, then half of cut.bin's bytes.
    let cut = whole[..3 * 512 + 5_000].to_vec();
    for packing in [Packing::Gzip, Packing::Plain] {
        let tmp = mkdir(tmp.path(), &format!("{packing:?}"));
        let input = crafted_as(&tmp, "input", std::slice::from_ref(&cut), packing);
        let files = Layout::open(&input).files();
        let layers = files.blob_json(str_at(&files.root(), "digest"))["layers"].clone();
        let layer = str_at(layers.as_array().unwrap().last().unwrap(), "digest").to_owned();
        for (kind, name) in [("local", "rootfs"), ("tar", "rootfs.tar")] {
            let out = mkdir(&tmp, &format!("out-{kind}"));
            let spec = format!("type={kind},dest={}", path_str(&out.join(name)));
            let run = export(input.as_os_str(), &[spec], None);
            run.assert_code(1);
            run.assert_error(&[short(&layer)], &["unexpected eof", "ends"]);
            assert_empty_or_absent(&out);
        }
    }
}

/// A valid zstd frame holding `data` in raw (stored) blocks: what a
/// decoder must read, without needing a zstd encoder here.
fn zstd_raw_blocks(data: &[u8]) -> Vec<u8> {
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

// ---------------------------------------------------------------------------
// Provenance
// ---------------------------------------------------------------------------

/// Adds a BuildKit attestation manifest with an SLSA provenance statement
/// for each platform of the sample copy in `dir`; returns platform
/// architecture → statement bytes.
fn add_provenance(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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

#[test]
fn provenance_is_written_beside_the_files() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let statements = add_provenance(&input);
    let split = tmp.path().join("split");
    let merged = tmp.path().join("merged");
    let one = tmp.path().join("one");
    let tarball = tmp.path().join("split.tar");
    export_ok(
        &input,
        &[
            format!("type=local,dest={}", path_str(&split)),
            format!("type=local,dest={},platform-split=false", path_str(&merged)),
            format!("type=local,dest={},platform=linux/amd64", path_str(&one)),
            format!("type=tar,dest={}", path_str(&tarball)),
        ],
    );
    // Attestation manifests are not platforms.
    assert_eq!(dir_names(&split), ["linux_amd64", "linux_arm64_v8"]);
    let tar_bytes = fs::read(&tarball).unwrap();
    for (sub, arch) in [("linux_amd64", "amd64"), ("linux_arm64_v8", "arm64")] {
        let path = format!("{sub}/provenance.json");
        assert_eq!(fs::read(split.join(&path)).unwrap(), statements[arch]);
        assert_eq!(
            Snapshot::of_tar(&tar_bytes, &format!("{sub}/")).items["provenance.json"],
            Item::File(statements[arch].clone())
        );
        assert_eq!(
            fs::read(merged.join(format!("provenance.{sub}.json"))).unwrap(),
            statements[arch]
        );
    }
    assert_eq!(
        fs::read(one.join("provenance.json")).unwrap(),
        statements["amd64"]
    );
    assert!(one.join("app/platform.txt").is_file());
}

// ---------------------------------------------------------------------------
// Hostile layers
// ---------------------------------------------------------------------------

/// A place to export into with sentinels beside the destination:
/// `work/sentinel` (a file) and `work/sentinel-dir/inner`.
struct Arena {
    tmp: tempfile::TempDir,
}

impl Arena {
    fn new() -> Arena {
        let tmp = tempdir();
        let work = mkdir(tmp.path(), "work");
        fs::write(work.join("sentinel"), b"keep").unwrap();
        fs::write(mkdir(&work, "sentinel-dir").join("inner"), b"keep").unwrap();
        Arena { tmp }
    }

    fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    fn dest(&self) -> PathBuf {
        self.work().join("dest")
    }

    /// Every path under the temporary directory but the destination and
    /// the input, with file contents.
    fn outside(&self) -> BTreeMap<String, Item> {
        let snap = Snapshot::of_dir(self.tmp.path());
        snap.items
            .into_iter()
            .filter(|(p, _)| {
                !p.starts_with("work/dest") && !p.starts_with("input") && !p.starts_with("bundle")
            })
            .collect()
    }

    /// Exports the sample with `layers` on top into `dest` as `local`,
    /// once with the layers gzipped and once uncompressed (the host then
    /// copies file bytes out of them); asserts both give the same tree, that
    /// nothing outside `dest` changed, the sentinels included, and that the
    /// sentinel file has one link. Returns the run and the snapshot of
    /// `dest` of the uncompressed export.
    #[track_caller]
    fn export_local(&self, layers: &[Vec<u8>]) -> (Run, Snapshot) {
        let (gzip_run, gzip) = self.export_packed(layers, Packing::Gzip);
        fs::remove_dir_all(self.dest()).unwrap();
        let (run, plain) = self.export_packed(layers, Packing::Plain);
        assert_eq!(plain.items, gzip.items, "plain and gzipped layers differ");
        assert_eq!(plain.links, gzip.links);
        assert_eq!(plain.modes, gzip.modes);
        assert_eq!(plain.mtimes, gzip.mtimes);
        // The same warnings (their layer digests differ).
        let warnings = |run: &Run| run.stderr.matches("warning:").count();
        assert_eq!(
            warnings(&run),
            warnings(&gzip_run),
            "{}\n{}",
            run.describe(),
            gzip_run.describe()
        );
        (run, plain)
    }

    /// The name of the input stored as `packing` says.
    fn input(&self, packing: Packing) -> String {
        format!("input-{packing:?}")
    }

    /// Exports the sample with `layers` stored as `packing` says into `dest`.
    #[track_caller]
    fn export_packed(&self, layers: &[Vec<u8>], packing: Packing) -> (Run, Snapshot) {
        let input = crafted_as(self.tmp.path(), &self.input(packing), layers, packing);
        let before = self.outside();
        let run = export(
            input.as_os_str(),
            &[format!("type=local,dest={}", path_str(&self.dest()))],
            None,
        );
        run.assert_success();
        assert_eq!(self.outside(), before, "something outside dest changed");
        let work = self.work();
        assert_eq!(fs::read(work.join("sentinel")).unwrap(), b"keep");
        assert_eq!(fs::read(work.join("sentinel-dir/inner")).unwrap(), b"keep");
        assert_eq!(fs::metadata(work.join("sentinel")).unwrap().nlink(), 1);
        assert_eq!(dir_names(&work), ["dest", "sentinel", "sentinel-dir"]);
        let snap = Snapshot::of_dir(&self.dest());
        // No symlink in dest points outside it.
        for (path, item) in &snap.items {
            if let Item::Symlink(_) = item {
                let target = fs::read_link(self.dest().join(path)).unwrap();
                let target = target.to_str().unwrap();
                assert!(!target.starts_with('/'), "{path} -> {target}");
                let depth = path.split('/').count() as i64 - 1;
                let mut level = depth;
                for part in target.split('/') {
                    match part {
                        ".." => level -= 1,
                        "" | "." => {}
                        _ => level += 1,
                    }
                    assert!(level >= 0, "{path} -> {target} climbs out of dest");
                }
            }
        }
        (run, snap)
    }
}

#[test]
fn hostile_dotdot_paths_stay_inside() {
    let arena = Arena::new();
    let layer = layer_tar(&[
        file("../sentinel", b"pwned"),
        file("../../sentinel", b"pwned"),
        file("a/../../sentinel", b"pwned"),
        file("../sentinel-dir/inner", b"pwned"),
        file("../new-outside", b"pwned"),
        dir("../made-outside/"),
        file("ok/../inside", b"fine"),
    ]);
    let (run, snap) = arena.export_local(&[layer]);
    assert!(
        run.stderr.contains("climbs above the root"),
        "{}",
        run.describe()
    );
    assert_eq!(snap.items["inside"], Item::File(b"fine".to_vec()));
}

#[test]
fn hostile_absolute_paths_land_inside() {
    let arena = Arena::new();
    let outside = arena.work().join("sentinel");
    let abs = path_str(&outside).to_owned();
    let layer = layer_tar(&[
        file("/abs-file", b"inside"),
        file(&abs, b"pwned"),
        file("/../sentinel", b"pwned"),
    ]);
    let (_, snap) = arena.export_local(&[layer]);
    assert_eq!(snap.items["abs-file"], Item::File(b"inside".to_vec()));
    // The absolute host path is a path inside the root.
    let inside = abs.trim_start_matches('/');
    assert_eq!(snap.items[inside], Item::File(b"pwned".to_vec()));
}

#[test]
fn hostile_symlink_then_write_through_it() {
    let arena = Arena::new();
    let work = arena.work();
    let lower = layer_tar(&[
        symlink("up", ".."),
        symlink("up2", "../../.."),
        symlink("abs", path_str(&work)),
        symlink("to-sentinel", "../sentinel"),
        symlink("to-sentinel-abs", path_str(&work.join("sentinel"))),
        symlink("to-dir", "../sentinel-dir"),
        // In the same layer, through the link just made.
        file("up/sentinel", b"pwned"),
    ]);
    let upper = layer_tar(&[
        file("up2/sentinel", b"pwned"),
        file("abs/sentinel", b"pwned"),
        file("to-sentinel", b"replaces the link"),
        file("to-dir/inner", b"pwned"),
        dir("to-sentinel-abs/"),
        hardlink("hl-through", "up/sentinel"),
    ]);
    let (_, snap) = arena.export_local(&[lower, upper]);
    // Every write went inside, where the links mean inside the root.
    assert_eq!(snap.items["sentinel"], Item::File(b"pwned".to_vec()));
    assert_eq!(
        snap.items["to-sentinel"],
        Item::File(b"replaces the link".to_vec())
    );
    assert_eq!(snap.items["to-sentinel-abs"], Item::Dir);
}

#[test]
fn hostile_hard_links_to_outside_are_left_out() {
    let arena = Arena::new();
    let work = arena.work();
    let layer = layer_tar(&[
        hardlink("hl1", "../sentinel"),
        hardlink("hl2", path_str(&work.join("sentinel"))),
        hardlink("hl3", "../../../../../../../etc/passwd"),
        symlink("up", ".."),
        hardlink("hl4", "up/sentinel"),
        hardlink("hl5", "/etc/passwd"),
    ]);
    let (run, snap) = arena.export_local(&[layer]);
    for name in ["hl1", "hl2", "hl3", "hl4", "hl5"] {
        assert!(!snap.items.contains_key(name), "{name}: {snap:?}");
    }
    assert!(run.stderr.contains("hard link"), "{}", run.describe());
}

#[test]
fn hostile_devices_and_setuid() {
    let arena = Arena::new();
    let device = |path, kind, device| Raw {
        kind,
        device,
        ..file(path, b"")
    };
    let layer = layer_tar(&[
        dir("dev/"),
        device("dev/null", tar::EntryType::Char, (1, 3)),
        device("dev/sda", tar::EntryType::Block, (8, 0)),
        device("dev/fifo", tar::EntryType::Fifo, (0, 0)),
        Raw {
            mode: 0o6755,
            ..file("suid", b"#!/bin/sh\n")
        },
    ]);
    let input_layers = [layer];
    let (run, snap) = arena.export_local(&input_layers);
    assert_eq!(snap.items["dev"], Item::Dir);
    assert!(dir_names(&arena.dest().join("dev")).is_empty(), "{snap:?}");
    assert!(
        run.stderr.contains("character device left out"),
        "{}",
        run.describe()
    );
    assert_eq!(snap.modes["suid"] & 0o6000, 0, "setuid/setgid dropped");

    // A tar records them as they are.
    let tarball = arena.tmp.path().join("rootfs.tar");
    export_ok(
        &arena.tmp.path().join(arena.input(Packing::Plain)),
        &[format!("type=tar,dest={}", path_str(&tarball))],
    );
    let bytes = fs::read(&tarball).unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut seen = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_str().unwrap().to_owned();
        seen.insert(
            path,
            (entry.header().entry_type(), entry.header().mode().unwrap()),
        );
    }
    assert_eq!(seen["dev/null"].0, tar::EntryType::Char);
    assert_eq!(seen["dev/fifo"].0, tar::EntryType::Fifo);
    assert_eq!(seen["suid"].1, 0o6755);
}
