use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use super::seed::COPY_BELOW;
use super::*;

fn checks() -> Checks {
    Checks {
        links: Links::Refuse,
        max_bytes: 1 << 20,
        deadline: Instant::now() + Duration::from_secs(60),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn failed_output_leaves_nothing_not_even_parents() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("a/b/out.tar");
    let staging = Staging::create(Target::Path(dest.clone())).unwrap();
    fs::write(staging.path().join("out.tar"), b"partial").unwrap();
    drop(staging);
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn file_output_is_renamed_into_place() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("out.tar");
    fs::write(&dest, b"old").unwrap();
    let staging = Staging::create(Target::Path(dest.clone())).unwrap();
    let grant = staging.grant(OutputKind::File).unwrap();
    assert_eq!(grant.file.as_deref(), Some("out.tar"));
    fs::write(staging.path().join("out.tar"), b"new").unwrap();
    fs::write(staging.path().join("scratch"), b"left by the guest").unwrap();
    staging.commit(&grant, &checks()).unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"new");
    assert_eq!(entries(root.path()), ["out.tar"]);
}

#[test]
fn a_symlink_is_never_placed_as_a_file_output() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("secret"), b"secret").unwrap();
    let dest = root.path().join("out.tar");
    let staging = Staging::create(Target::Path(dest.clone())).unwrap();
    let grant = staging.grant(OutputKind::File).unwrap();
    symlink("../secret", staging.path().join("out.tar")).unwrap();
    let err = staging.commit(&grant, &checks()).unwrap_err().to_string();
    assert!(err.contains("is a symlink, not a regular file"), "{err}");
    assert_eq!(entries(root.path()), ["secret"]);
}

#[test]
fn directory_output_replaces_existing_directory() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("layout");
    fs::create_dir(&dest).unwrap();
    fs::write(dest.join("stale"), b"x").unwrap();
    let staging = Staging::create(Target::Path(dest.clone())).unwrap();
    let grant = staging.grant(OutputKind::Directory).unwrap();
    fs::write(staging.path().join("index.json"), b"{}").unwrap();
    staging.commit(&grant, &checks()).unwrap();
    assert!(dest.join("index.json").is_file());
    assert!(!dest.join("stale").exists());
    assert_eq!(entries(root.path()), ["layout"]);
}

#[test]
fn a_directory_output_with_a_symlink_is_refused_when_links_are_not_kept() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("cache");
    let staging = Staging::create(Target::Path(dest.clone())).unwrap();
    let grant = staging.grant(OutputKind::Directory).unwrap();
    fs::create_dir(staging.path().join("blobs")).unwrap();
    symlink("/etc/passwd", staging.path().join("blobs/x")).unwrap();
    let err = staging.commit(&grant, &checks()).unwrap_err().to_string();
    assert!(err.contains("a symlink at blobs/x"), "{err}");
    assert_eq!(entries(root.path()), Vec::<String>::new());
}

#[test]
fn seeded_blobs_are_placeholders_the_guest_cannot_write_through() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("cache");
    fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    fs::write(dest.join("index.json"), b"{}").unwrap();
    let big = vec![7u8; (COPY_BELOW + 1) as usize];
    fs::write(dest.join("blobs/sha256/keep"), &big).unwrap();
    fs::write(dest.join("blobs/sha256/small"), b"small blob").unwrap();
    fs::write(dest.join("blobs/sha256/drop"), b"dropped blob").unwrap();
    fs::write(dest.join("blobs/sha256/over"), &big).unwrap();
    let mut staging = Staging::create(Target::Path(dest.clone())).unwrap();
    let grant = staging.grant(OutputKind::Directory).unwrap();
    staging.seed().unwrap();
    let staged = staging.path();
    // What a hostile backend can do to what it was given.
    assert_eq!(
        fs::metadata(staged.join("blobs/sha256/keep"))
            .unwrap()
            .len(),
        big.len() as u64
    );
    fs::write(staged.join("blobs/sha256/small"), b"CORRUPTED").unwrap();
    fs::write(staged.join("blobs/sha256/over"), b"CORRUPTED").unwrap();
    fs::remove_file(staged.join("blobs/sha256/drop")).unwrap();
    // The user's cache is untouched while the backend runs.
    assert_eq!(fs::read(dest.join("blobs/sha256/over")).unwrap(), big);
    staging
        .commit(
            &grant,
            &Checks {
                max_bytes: 16 << 20,
                ..checks()
            },
        )
        .unwrap();
    assert_eq!(fs::read(dest.join("blobs/sha256/keep")).unwrap(), big);
    assert_eq!(
        fs::read(dest.join("blobs/sha256/over")).unwrap(),
        b"CORRUPTED"
    );
    assert!(!dest.join("blobs/sha256/drop").exists());
    assert_eq!(entries(root.path()), ["cache"]);
}

#[test]
fn stale_staging_directories_of_dead_runs_are_collected() {
    let root = tempfile::tempdir().unwrap();
    let stale = root.path().join(".out.tar.outport-staging-deadbeef");
    fs::create_dir_all(stale.join("deep/er")).unwrap();
    fs::write(stale.join("deep/er/partial"), b"x").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    fs::File::open(&stale).unwrap().set_modified(old).unwrap();
    // Someone else's files, named almost alike, stay.
    fs::create_dir(root.path().join("outport-staging-mine")).unwrap();
    fs::write(root.path().join(".x.outport-staging-file"), b"not a dir").unwrap();
    // Named like staging but not as outport names it: somebody else's.
    let backup = root.path().join(".notes.outport-staging-backup");
    fs::create_dir(&backup).unwrap();
    fs::File::open(&backup).unwrap().set_modified(old).unwrap();
    let parent = Dir::open_ambient_dir(root.path(), ambient_authority()).unwrap();
    let (removed, left) = collect_stale(&parent);
    assert_eq!(removed, 1);
    assert!(left.is_empty());
    assert!(!stale.exists());
    // A live run's (locked) staging directory stays, however old.
    let live = Staging::create(Target::Path(root.path().join("other.tar"))).unwrap();
    fs::File::open(live.path())
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(collect_stale(&parent).0, 0);
    assert!(live.path().is_dir());
    assert!(root.path().join("outport-staging-mine").is_dir());
    assert!(root.path().join(".x.outport-staging-file").is_file());
    assert!(root.path().join(".notes.outport-staging-backup").is_dir());
}

#[test]
fn kind_mismatch_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let staging = Staging::create(Target::Path(root.path().to_path_buf())).unwrap();
    assert!(
        staging
            .grant(OutputKind::File)
            .unwrap_err()
            .to_string()
            .contains("is a directory")
    );
    assert!(
        staging
            .grant(OutputKind::None)
            .unwrap_err()
            .to_string()
            .contains("takes no dest")
    );
    let stdout = Staging::create(Target::Stdout).unwrap();
    assert!(stdout.grant(OutputKind::Directory).is_err());
}
