//! The compile cache: a second run loads the compiled component instead of
//! compiling it; an entry is used only with a MAC under the cache's secret
//! key (`.key`, mode 0600), so a damaged or forged entry, or a genuine one
//! moved under another component's key, is recompiled and replaced;
//! engines with different settings (fuel metering) never share an entry;
//! a cache directory or key others could write or read is not used.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::common::*;

const LOG: &[(&str, &str)] = &[("OUTPORT_LOG", "outport=info")];

fn export_once(cache: &Path, dest: &Path) -> Run {
    export_with(cache, dest, &[])
}

/// Runs `outport export SAMPLE --output type=TYPE,dest=DEST` with the
/// compile cache in `cache`; checks it succeeded.
fn export_as(kind: &str, cache: &Path, dest: &Path) -> Run {
    let image = sample_image();
    let output = format!("type={kind},dest={}", path_str(dest));
    let run = outport_with_cache(
        ["export", path_str(&image), "--output", &output],
        cache,
        LOG,
    );
    run.assert_code(0);
    run
}

/// Checks `run` compiled the oci exporter instead of loading it.
fn assert_compiled(run: &Run) {
    assert!(
        run.stderr.contains("compiled component oci")
            && !run.stderr.contains("from the compile cache"),
        "{}",
        run.describe()
    );
}

/// Checks `run` loaded the oci exporter from the cache.
fn assert_loaded(run: &Run) {
    assert!(
        run.stderr.contains("from the compile cache") && !run.stderr.contains("compiled component"),
        "{}",
        run.describe()
    );
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Exports the sample image to `dest` with the compile cache in `cache`
/// and `extra` arguments; checks it succeeded.
fn export_with(cache: &Path, dest: &Path, extra: &[&str]) -> Run {
    let image = sample_image();
    let output = format!("type=oci,dest={}", path_str(dest));
    let mut args = vec!["export", path_str(&image), "--output", output.as_str()];
    args.extend(extra);
    let run = outport_with_cache(args, cache, LOG);
    run.assert_code(0);
    run
}

fn entries_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

#[test]
fn second_run_does_not_compile() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let first = export_once(&cache, &tmp.path().join("a.tar"));
    assert!(
        first.stderr.contains("compiled component oci"),
        "{}",
        first.describe()
    );
    assert_eq!(entries_ending(&cache, ".entry").len(), 1);
    assert_eq!(mode_of(&cache), 0o700);
    assert_eq!(mode_of(&cache.join(".key")), 0o600);
    assert_eq!(fs::metadata(cache.join(".key")).unwrap().len(), 32);

    let second = export_once(&cache, &tmp.path().join("b.tar"));
    assert!(
        second.stderr.contains("loaded component oci")
            && second.stderr.contains("from the compile cache"),
        "{}",
        second.describe()
    );
    assert!(
        !second.stderr.contains("compiled component"),
        "{}",
        second.describe()
    );
    assert_eq!(
        fs::read(tmp.path().join("a.tar")).unwrap(),
        fs::read(tmp.path().join("b.tar")).unwrap()
    );
}

#[test]
fn damaged_cache_entry_is_recompiled() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    export_once(&cache, &tmp.path().join("a.tar"));
    let artifact = entries_ending(&cache, ".entry").pop().unwrap();
    let mut bytes = fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&artifact, bytes).unwrap();

    let run = export_once(&cache, &tmp.path().join("b.tar"));
    assert!(
        run.stderr
            .contains("is not signed with this cache's key; recompiling"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("compiled component oci"),
        "{}",
        run.describe()
    );
    // The entry was rewritten and is good again.
    let third = export_once(&cache, &tmp.path().join("c.tar"));
    assert!(
        third.stderr.contains("from the compile cache"),
        "{}",
        third.describe()
    );
}

#[test]
fn engines_with_and_without_fuel_keep_separate_entries() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let policy = tmp.path().join("policy.toml");
    fs::write(&policy, "[limits]\nfuel = 10000000000\n").unwrap();
    let fuel = ["--policy", path_str(&policy)];
    export_once(&cache, &tmp.path().join("a.tar"));
    let metered = export_with(&cache, &tmp.path().join("b.tar"), &fuel);
    assert!(
        metered.stderr.contains("compiled component oci")
            && !metered.stderr.contains("from the compile cache"),
        "{}",
        metered.describe()
    );
    assert_eq!(entries_ending(&cache, ".entry").len(), 2);
    for (run, dest) in [
        (
            export_with(&cache, &tmp.path().join("c.tar"), &fuel),
            "c.tar",
        ),
        (export_once(&cache, &tmp.path().join("d.tar")), "d.tar"),
    ] {
        assert!(
            run.stderr.contains("from the compile cache")
                && !run.stderr.contains("compiled component"),
            "{dest}: {}",
            run.describe()
        );
    }
    assert_eq!(entries_ending(&cache, ".entry").len(), 2);
}

/// The oci exporter's entry and the docker exporter's, compiled into
/// `cache` (and `a.tar`, the oci output, in `dir`).
fn oci_and_docker_entries(cache: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    export_once(cache, &dir.join("a.tar"));
    let oci = entries_ending(cache, ".entry").pop().unwrap();
    export_as("docker", cache, &dir.join("docker.tar"));
    let docker = entries_ending(cache, ".entry")
        .into_iter()
        .find(|p| *p != oci)
        .unwrap();
    (oci, docker)
}

/// Exports to `b.tar` in `dir` again, checks the oci exporter's entry was
/// refused (a warning, the exporter compiled) and the output is the same
/// as `a.tar`: the oci exporter ran, not the code in the entry.
fn rerun_refusing_the_entry(cache: &Path, dir: &Path) {
    let run = export_once(cache, &dir.join("b.tar"));
    assert!(
        run.stderr.contains("is not signed with this cache's key"),
        "{}",
        run.describe()
    );
    assert_compiled(&run);
    assert_eq!(
        fs::read(dir.join("b.tar")).unwrap(),
        fs::read(dir.join("a.tar")).unwrap(),
        "the oci exporter ran, not the code in the entry"
    );
}

#[test]
fn a_forged_entry_with_a_recomputed_checksum_is_not_loaded() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let (oci, docker) = oci_and_docker_entries(&cache, tmp.path());
    // Someone who can write the cache but not read its key puts another
    // component's compiled code under the oci exporter's key, with the
    // sha256 of the code where the MAC goes.
    let entry = fs::read(&docker).unwrap();
    let code = &entry[32..];
    let mut forged = Sha256::digest(code).to_vec();
    forged.extend_from_slice(code);
    fs::write(&oci, &forged).unwrap();

    rerun_refusing_the_entry(&cache, tmp.path());
    assert_ne!(fs::read(&oci).unwrap(), forged, "the entry was replaced");
    assert_loaded(&export_once(&cache, &tmp.path().join("c.tar")));
}

#[test]
fn a_genuine_entry_moved_under_another_key_is_not_loaded() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let (oci, docker) = oci_and_docker_entries(&cache, tmp.path());
    // A tenant's own component, compiled here, planted under another's key.
    fs::copy(&docker, &oci).unwrap();
    rerun_refusing_the_entry(&cache, tmp.path());
}

#[test]
fn a_cache_others_may_write_is_not_used() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    fs::create_dir(&cache).unwrap();
    set_mode(&cache, 0o777);
    let run = export_once(&cache, &tmp.path().join("a.tar"));
    assert!(
        run.stderr.contains("writable by others (mode 777)")
            && run.stderr.contains("compiled components are not cached"),
        "{}",
        run.describe()
    );
    assert_compiled(&run);
    LayoutFiles::from_tar(&tmp.path().join("a.tar")).verify();
    assert_eq!(dir_names(&cache), Vec::<String>::new(), "nothing written");
}

#[test]
fn a_key_group_or_others_may_read_is_not_used() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    export_once(&cache, &tmp.path().join("a.tar"));
    let key = cache.join(".key");
    for mode in [0o644, 0o620] {
        set_mode(&key, mode);
        let run = export_once(&cache, &tmp.path().join(format!("{mode:o}.tar")));
        assert!(
            run.stderr.contains(&format!(
                "may be read or written by group or others (mode {mode:o}"
            )) && run.stderr.contains("compiled components are not cached"),
            "{}",
            run.describe()
        );
        // The entry there is not loaded: without a trusted key nothing is.
        assert_compiled(&run);
    }
    set_mode(&key, 0o600);
    assert_loaded(&export_once(&cache, &tmp.path().join("b.tar")));
}
