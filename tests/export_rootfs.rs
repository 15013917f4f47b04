//! The `tar` and `local` exporters end to end: the image's root filesystem
//! compared with `umoci unpack --rootless` of the same image, multi-platform
//! layouts (split and merged), the tar stream against the unpacked
//! directory, provenance statements, and hostile layers (crafted tarballs)
//! that must not touch anything outside the destination.

use std::collections::BTreeMap;
use std::fs;

use crate::common::*;

mod arena;
mod crafting;
mod hostile;
mod snapshot;

use arena::*;
pub(crate) use crafting::*;
pub(crate) use snapshot::*;

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

/// A lower layer (a long path, an opaque directory's old contents, files
/// to white out, hard links and symlinks) and an upper one (an opaque
/// directory, whiteouts, a directory becoming a file, a write through a
/// symlinked directory), with the long path.
fn whiteout_layers() -> (String, Vec<u8>, Vec<u8>) {
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
    (long, lower, upper)
}

/// What the layers of [`whiteout_layers`] meant, spelled out in the tree
/// `ours`.
fn assert_layers_meant(ours: &Snapshot, long: &str) {
    // What the layers meant, spelled out.
    assert_eq!(ours.items["opq/c"], Item::File(b"c".to_vec()));
    assert_eq!(
        ours.items[long],
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
}

#[test]
fn whiteouts_opaque_dirs_and_links_match_umoci() {
    let tmp = tempdir();
    let (long, lower, upper) = whiteout_layers();
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
        assert_layers_meant(&ours, &long);
        // No symlink of the output points outside it.
        let abs = fs::read_link(local.join("abs")).unwrap();
        assert!(abs.is_relative(), "{}", abs.display());
    }
}

/// Layers of thousands of files in many directories: enough that the host
/// creates each batch of files on several threads (`blob.write-files`).
fn many_files_layers() -> (Vec<u8>, Vec<u8>) {
    let paths: Vec<(String, Vec<u8>, u32)> = (0..2400u32)
        .map(|i| {
            let path = format!("many/d{:02}/f{i:04}", i % 48);
            let bytes = format!("file {i} ").repeat((i % 37) as usize).into_bytes();
            let mode = [0o644, 0o755, 0o600, 0o444][(i % 4) as usize];
            (path, bytes, mode)
        })
        .collect();
    let dirs: Vec<String> = (0..48).map(|d| format!("many/d{d:02}/")).collect();
    let mut entries = vec![dir("many/")];
    entries.extend(dirs.iter().map(|d| dir(d)));
    entries.extend(paths.iter().map(|(path, bytes, mode)| Raw {
        mode: *mode,
        ..file(path, bytes)
    }));
    let lower = layer_tar(&entries);
    let whiteouts: Vec<String> = (0..2400u32)
        .step_by(97)
        .map(|i| format!("many/d{:02}/.wh.f{i:04}", i % 48))
        .collect();
    let mut upper: Vec<Raw> = whiteouts.iter().map(|w| file(w, b"")).collect();
    upper.push(file("many/d07/f0007", b"replaced in the upper layer"));
    (lower, layer_tar(&upper))
}

#[test]
fn many_files_match_umoci() {
    let tmp = tempdir();
    let (lower, upper) = many_files_layers();
    let input = crafted(tmp.path(), &[lower, upper]);
    let local = tmp.path().join("local");
    export_ok(&input, &[format!("type=local,dest={}", path_str(&local))]);
    let reference = Snapshot::of_dir(&umoci_rootfs(tmp.path(), &input));
    assert!(
        reference.items.contains_key("many/d47/f2399"),
        "{reference:?}"
    );
    assert!(!reference.items.contains_key("many/d00/f0000"));
    let ours = Snapshot::of_dir(&local);
    assert_same_tree(&ours, &reference, "local");
    let files = |snap: &Snapshot| -> BTreeMap<String, u32> {
        snap.modes
            .iter()
            .filter(|(path, _)| *path == "many" || path.starts_with("many/"))
            .map(|(path, mode)| (path.clone(), *mode))
            .collect()
    };
    assert_eq!(files(&ours), files(&reference), "modes");
    assert_eq!(files(&ours).len(), 1 + 48 + 2400 - 25);
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

// ---------------------------------------------------------------------------
// Provenance
// ---------------------------------------------------------------------------

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
