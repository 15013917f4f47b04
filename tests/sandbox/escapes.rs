//! A component cannot reach past its destination or disturb the host:
//! escapes and planted symlinks are refused, a deep tree is removed, a
//! panic or bad text fails it alone, bogus digests and media types get
//! clear errors, floods are throttled, and it inherits no environment,
//! arguments or stdin.

use super::*;

#[test]
fn escapes_from_the_destination_are_refused() {
    let response = &Work::new().response("escape");
    for what in ["etc-passwd", "absolute", "parent", "parent-at"] {
        let key = format!("test.refused.{what}");
        assert!(response[&key].is_string(), "{key} missing: {response:#}");
    }
    assert!(
        response["test.refused.symlink"].is_string()
            || (response["test.refused.through-symlink"].is_string()
                && response["test.refused.read-through-symlink"].is_string()),
        "{response:#}"
    );
    // The host's own file creation (`blob.write-files`) refuses the same
    // paths, and a path through or onto a planted symlink.
    for (what, says) in [
        ("write-files-parent", "not a relative path of plain names"),
        ("write-files-absolute", "not a relative path of plain names"),
        ("write-files-through-symlink", "its directory"),
        ("write-files-onto-symlink", "File exists"),
        // Created on several threads, the list still fails at its first
        // bad file in order.
        ("write-files-many", "link/first-bad"),
    ] {
        let key = format!("test.refused.{what}");
        let error = response[&key].as_str().unwrap_or_default();
        assert!(error.contains(says), "{key}: {error:?} in {response:#}");
    }
    let many = response["test.refused.write-files-many"].as_str();
    assert!(!many.unwrap_or_default().contains("second-bad"), "{many:?}");
    assert!(!Path::new("/x").exists());
}

#[test]
fn invalid_utf8_from_the_guest_fails_the_instance_cleanly() {
    Work::new().fails("invalid-utf8", "", "not valid UTF-8");
}

#[test]
fn a_panic_fails_alone_and_leaves_the_sentinel() {
    Work::new().fails("panic", "", "deliberate panic");
}

#[test]
fn bogus_digests_and_media_types_get_clear_errors() {
    let response = &Work::new().response("bogus-calls");
    for (what, says) in [
        ("zz", "not a digest"),
        ("short", "not a digest"),
        ("upper", "not a digest"),
        ("empty-digest", "not a digest"),
        ("traversal", "not a digest"),
        ("empty-media-type", "not a media type"),
        ("garbage-media-type", "not a media type"),
        ("no-subtype", "not a media type"),
        ("range-past-end", "run past its end"),
        ("range-start-past-end", "run past its end"),
        ("range-overflow", "run past its end"),
    ] {
        let key = format!("test.refused.{what}");
        let error = response[&key].as_str().unwrap_or_default();
        assert!(error.contains(says), "{key}: {error:?} in {response:#}");
    }
}

#[test]
fn a_log_and_progress_flood_is_throttled() {
    let work = Work::new();
    let run = work.run("log-flood", &["--progress", "plain"], &["bad.txt"]);
    run.assert_success();
    let lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[bad]"))
        .count();
    assert!(lines < 5000, "{lines} lines from 200000 log calls");
    for what in ["log lines", "progress reports"] {
        let note = format!("rate limit of 100 {what} per second");
        assert!(run.stderr.contains(&note), "{note:?} missing");
    }
}

#[test]
fn a_component_inherits_no_environment_arguments_or_stdin() {
    let work = Work::new();
    let meta = work.tmp.path().join("meta.json");
    let stdin = work.tmp.path().join("stdin.txt");
    fs::write(&stdin, b"secret from stdin").unwrap();
    let cache = work.tmp.path().join("cache");
    let run = work.run_by(
        "ambient",
        &["--metadata-file", path_str(&meta)],
        &["bad.txt"],
        |args| {
            run_outport(args.into_iter().map(Into::into).collect(), |command| {
                command
                    .arg("--cache-dir")
                    .arg(&cache)
                    .env("OUTPORT_TEST_SECRET", "secret from the environment")
                    .stdin(fs::File::open(&stdin).unwrap());
            })
        },
    );
    run.assert_success();
    let metadata = read_json(&meta);
    let response = &exporter_entry(&metadata, "bad")["response"];
    assert_eq!(response["test.env"], "", "{response:#}");
    assert_eq!(response["test.args"], "", "{response:#}");
    let stdin = response["test.stdin"].as_str().unwrap_or_default();
    assert!(!stdin.contains("secret"), "{response:#}");
}

#[test]
fn a_symlink_planted_as_the_output_file_is_refused_not_followed() {
    let work = Work::new();
    let run = work.run("symlink-output", &[], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["is a symlink, not a regular file"]);
    assert!(!run.stderr.contains("do not touch"));
    assert_eq!(work.sentinel_tree()["keep.txt"], b"do not touch");
}

#[test]
fn a_deep_staging_tree_is_removed_without_crashing_the_host() {
    let run = Work::new().run("deep-dirs", &[], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["deliberate failure after nesting"]);
}
