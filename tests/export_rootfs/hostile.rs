//! Hostile layers (crafted tarballs): `..` and absolute paths, writes
//! through a planted symlink, hard links to outside, devices and setuid
//! bits; nothing outside the destination changes.

use super::*;

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
