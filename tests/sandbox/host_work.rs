//! What the host does on an instance's behalf is charged to that instance:
//! a layer conversion it asks for (`convert-layers`) stops at its
//! `scratch-bytes`, its time limit and its memory limit, and its open
//! files come out of its own share of the process's open-file limit, so a
//! sibling instance still finishes.

use std::fs;
use std::process::Command;
use std::time::Instant;

use super::{Work, baseline_rss, fails_with_memory_bounded, misbehave_limits};
use crate::common::*;

/// Runs `action` with `TMPDIR` in the work directory and `extra`
/// arguments; the bad instance must fail with `message` and every
/// temporary file of the run must be gone afterwards.
fn fails_leaving_no_temporary_file(work: &Work, action: &str, extra: &[&str], message: &str) {
    let tmp = mkdir(work.tmp.path(), "tmp");
    let run = work.run_by(action, extra, &[], |args| {
        run_outport(args.into_iter().map(Into::into).collect(), |command| {
            command
                .arg("--cache-dir")
                .arg(work.tmp.path().join("cache"))
                .env("TMPDIR", &tmp);
        })
    });
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &[message]);
    assert_eq!(dir_names(&tmp), Vec::<String>::new(), "{}", run.describe());
}

#[test]
fn a_decompression_bomb_stops_at_the_scratch_limit_with_host_memory_bounded() {
    let work = Work::new();
    let base = baseline_rss(&work);
    // 8 MiB of gzip that the host would expand to an 8 GiB temporary file.
    fails_with_memory_bounded(
        &work,
        "convert-bomb",
        "scratch-bytes = 16777216",
        128 << 20,
        base,
        "scratch limit of 16777216 bytes exceeded",
    );
    let policy = work.policy(&misbehave_limits("scratch-bytes = 16777216"));
    fails_leaving_no_temporary_file(
        &work,
        "convert-bomb",
        &["--policy", path_str(&policy)],
        "scratch limit of 16777216 bytes exceeded",
    );
}

#[test]
fn a_conversion_stops_at_the_instances_time_limit() {
    // Recompressing 8 GiB of zeros takes the host some 17 s on 2 cores.
    let work = Work::new();
    let started = Instant::now();
    fails_leaving_no_temporary_file(
        &work,
        "convert-bomb-gzip",
        &["--timeout", "3"],
        "time limit of 3 s exceeded",
    );
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 12, "the run took {elapsed:?}");
}

#[test]
fn a_zstd_level_whose_memory_the_instance_lacks_is_refused() {
    let work = Work::new();
    let policy = work.policy(&misbehave_limits("memory-bytes = 134217728"));
    let run = work.run("convert-zstd-22", &["--policy", path_str(&policy)], &[]);
    run.assert_code(1);
    run.assert_error(
        &["instance \"bad\""],
        &[
            "zstd level 22 needs about",
            "over the memory limit of 134217728 bytes",
        ],
    );
}

#[test]
fn an_instance_holding_files_open_does_not_starve_its_siblings() {
    // The common default: 1024 open files, soft and hard.
    let work = Work::new();
    let bad = format!(
        "type=wasm,component={},action=fd-hog,output=directory,dest={},id=bad",
        outport_test_programs::MISBEHAVE,
        path_str(&work.out.join("bad"))
    );
    let run = work.run_output(&bad, &[], &[], |args| {
        let mut command = Command::new("prlimit");
        command
            .arg("--nofile=1024:1024")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_outport"));
        let cache = work.tmp.path().join("cache");
        run_command(command, args.into_iter().map(Into::into).collect(), |c| {
            c.arg("--cache-dir").arg(&cache);
        })
    });
    run.assert_code(1);
    // (1024 - 256 kept for the host - 16 per instance) / 2 instances.
    run.assert_error(
        &["instance \"bad\""],
        &["descriptor budget of 368 handles exceeded (open-file limit 1024 shared by 2 instances)"],
    );
    assert!(!work.out.join("bad").exists());
    let staged: Vec<String> = fs::read_dir(&work.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("outport-staging"))
        .collect();
    assert!(staged.is_empty(), "left behind: {staged:?}");
}
