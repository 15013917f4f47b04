use std::io::Write as _;
use std::os::unix::fs::FileExt as _;

use cap_std::ambient_authority;

use super::*;

/// A tar of three entries (4 KiB, 700 bytes, a directory) with its end.
fn archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, size) in [("a", 4096usize), ("b", 700)] {
        let mut header = tar::Header::new_ustar();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, &vec![b'x'; size][..])
            .unwrap();
    }
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_cksum();
    builder.append_data(&mut dir, "d/", &[][..]).unwrap();
    builder.into_inner().unwrap()
}

fn follower(tmp: &tempfile::TempDir, max_bytes: u64) -> Follower {
    let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
    Follower::new(dir, "image.tar", max_bytes)
}

/// `image.tar`, created for reading and writing.
fn create(tmp: &tempfile::TempDir) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp.path().join("image.tar"))
        .unwrap()
}

/// Steps until nothing more comes; returns what was handed out.
fn drain(f: &mut Follower) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = f.step() {
        out.extend_from_slice(&bytes);
    }
    out
}

#[test]
fn whole_entries_go_and_the_end_of_the_archive_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = archive();
    let mut f = follower(&tmp, u64::MAX);
    assert_eq!(f.step(), None, "no file yet");
    let mut file = create(&tmp);
    // Half a header: nothing goes.
    file.write_all(&tar[..300]).unwrap();
    assert_eq!(drain(&mut f), b"");
    // The first header and part of its data.
    file.write_all(&tar[300..2000]).unwrap();
    assert_eq!(drain(&mut f), &tar[..2000]);
    // Everything: all but the two zero blocks that end it.
    file.write_all(&tar[2000..]).unwrap();
    let end = 512 + 4096 + 512 + 1024 + 512;
    assert_eq!(drain(&mut f), &tar[2000..end]);
    assert!(f.stopped());
    assert!(tar[end..].iter().all(|b| *b == 0));
    // Bytes after the end never go.
    file.write_all(b"more").unwrap();
    assert_eq!(f.step(), None);
    let (sent, digest) = f.finish();
    assert_eq!(sent, end as u64);
    let far = Instant::now() + std::time::Duration::from_secs(60);
    assert_eq!(prefix_digest(&file, sent, far).unwrap(), Some(digest));
}

#[test]
fn a_rewritten_beginning_changes_the_prefix_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = archive();
    let file = create(&tmp);
    file.write_all_at(&tar, 0).unwrap();
    let mut f = follower(&tmp, u64::MAX);
    drain(&mut f);
    let (sent, digest) = f.finish();
    file.write_all_at(b"y", 600).unwrap();
    let far = Instant::now() + std::time::Duration::from_secs(60);
    assert_ne!(prefix_digest(&file, sent, far).unwrap(), Some(digest));
    // A file now shorter than what went has no such prefix.
    file.set_len(100).unwrap();
    assert_eq!(prefix_digest(&file, sent, far).unwrap(), None);
}

#[test]
fn what_is_no_tar_never_goes() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("image.tar"), vec![b'z'; 8192]).unwrap();
    let mut f = follower(&tmp, u64::MAX);
    assert_eq!(f.step(), None);
    assert!(f.stopped());
    // A gzip'd tar is not read as one either.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&archive()).unwrap();
    // Noise after it, so that there is a whole block to look at.
    let mut noise = 1u32;
    for _ in 0..4096 {
        noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
        gz.write_all(&noise.to_le_bytes()).unwrap();
    }
    let gz = gz.finish().unwrap();
    assert!(gz.len() > 512);
    std::fs::write(tmp.path().join("image.tar"), gz).unwrap();
    let mut f = follower(&tmp, u64::MAX);
    assert_eq!(f.step(), None);
    assert!(f.stopped());
}

#[test]
fn symlinks_and_fifos_are_never_opened_and_the_limit_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.tar");
    std::fs::write(&outside, archive()).unwrap();
    std::os::unix::fs::symlink(&outside, tmp.path().join("image.tar")).unwrap();
    let mut f = follower(&tmp, u64::MAX);
    assert_eq!(f.step(), None);
    assert!(!f.stopped(), "a symlink is waited out, not read");
    std::fs::remove_file(tmp.path().join("image.tar")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        tmp.path().join("image.tar"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Opening a FIFO for reading would wait for a writer: it is not opened.
    assert_eq!(f.step(), None);
    std::fs::remove_file(tmp.path().join("image.tar")).unwrap();
    std::fs::write(tmp.path().join("image.tar"), archive()).unwrap();
    let mut f = follower(&tmp, 1000);
    assert_eq!(drain(&mut f).len(), 1000);
}
