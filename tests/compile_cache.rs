//! The compile cache: a second run loads the compiled component instead of
//! compiling it, a damaged entry is detected and replaced, and engines with
//! different settings (fuel metering) never share an entry.

use std::fs;
use std::path::Path;

use crate::common::*;

const LOG: &[(&str, &str)] = &[("OUTPORT_LOG", "outport=info")];

fn export_once(cache: &Path, dest: &Path) -> Run {
    export_with(cache, dest, &[])
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

fn entries_ending(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
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
    assert_eq!(entries_ending(&cache, ".cwasm").len(), 1);
    assert_eq!(entries_ending(&cache, ".sha256").len(), 1);

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
    let artifact = entries_ending(&cache, ".cwasm").pop().unwrap();
    let mut bytes = fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&artifact, bytes).unwrap();

    let run = export_once(&cache, &tmp.path().join("b.tar"));
    assert!(
        run.stderr.contains("does not match its checksum"),
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
    assert_eq!(entries_ending(&cache, ".cwasm").len(), 2);
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
    assert_eq!(entries_ending(&cache, ".cwasm").len(), 2);
}
