//! The load into the docker daemon streams while the component writes,
//! against the real dockerd `scripts/test-services` starts: the test
//! component (`misbehave`'s `docker-*` actions) writes a docker tarball
//! whose config is labelled with the test's own repository (so its image ID
//! is the test's own), then waits. While it waits, the daemon has already
//! unpacked what was sent into its `docker-import-*` directory (seen from
//! outside); when the instance then fails, or another instance fails with
//! `--fail-fast`, the daemon keeps no image and no tag, and removes what it
//! unpacked. A component that rewrites bytes already sent still loads the
//! image it finally wrote.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::daemon::{docker, docker_host};
use crate::daemon_load::export_sample;

/// The test component writing a docker tarball tagged `name`, then doing
/// `action` after `pause` seconds, loaded into the daemon.
fn misbehave(action: &str, name: &str, pause: u64) -> String {
    format!(
        "type=wasm,component={},action={action},name={name},pause={pause},load=true",
        outport_test_programs::MISBEHAVE
    )
}

/// Where the daemon unpacks the loads it is receiving (its `TMPDIR`).
fn import_dir(host: &str) -> PathBuf {
    Path::new(&docker(host, &["info", "--format", "{{.DockerRootDir}}"])).join("tmp")
}

/// Whether the daemon is unpacking (or has left) a load whose
/// `manifest.json` names `name`.
fn importing(tmp: &Path, name: &str) -> bool {
    std::fs::read_dir(tmp).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            std::fs::read_to_string(e.path().join("manifest.json")).is_ok_and(|m| m.contains(name))
        })
    })
}

/// Watches the daemon's import directory for a load of `name` while
/// `run` runs; returns what `run` returned and, when the daemon was seen
/// unpacking it, how long before `run` returned it was first seen.
fn watching<T>(host: &str, name: &str, run: impl FnOnce() -> T) -> (T, Option<Duration>) {
    let tmp = import_dir(host);
    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(None::<Instant>));
    let watcher = {
        let (done, seen, name) = (done.clone(), seen.clone(), name.to_owned());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if importing(&tmp, &name) {
                    let mut first = seen.lock().expect("the watcher's lock");
                    first.get_or_insert_with(Instant::now);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let out = run();
    let ended = Instant::now();
    done.store(true, Ordering::SeqCst);
    watcher.join().expect("the watcher");
    let first = *seen.lock().expect("the watcher's lock");
    (
        out,
        first.map(|first| ended.saturating_duration_since(first)),
    )
}

/// The image ID the test component's tarball for `name` has: its config
/// digest, from a run that writes the tarball to a file.
fn image_id_of(host: &str, name: &str) -> String {
    let tmp = tempdir();
    let metadata = tmp.path().join("meta.json");
    let spec = format!(
        "type=wasm,component={},action=docker-then-sleep,name={name},pause=0,dest={}",
        outport_test_programs::MISBEHAVE,
        path_str(&tmp.path().join("x.tar"))
    );
    export_sample(
        host,
        &[spec],
        &["--metadata-file", path_str(&metadata)],
        &[],
    )
    .assert_success();
    let meta = read_json(&metadata);
    str_at(
        &array_at(&meta, "exporters")[0]["response"],
        "containerimage.config.digest",
    )
    .to_owned()
}

/// Whether the daemon has image `name` (a reference or an ID).
fn has_image(host: &str, name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", name])
        .env("DOCKER_HOST", host)
        .output()
        .expect("run docker")
        .status
        .success()
}

/// Asserts that the daemon has neither `name` nor image `id`, and that it
/// removed what it unpacked of the load (within 10 s).
#[track_caller]
fn assert_nothing_kept(host: &str, name: &str, id: &str) {
    assert!(!has_image(host, name), "{name} is tagged");
    assert!(!has_image(host, id), "image {id} was created");
    let tmp = import_dir(host);
    let until = Instant::now() + Duration::from_secs(10);
    while importing(&tmp, name) {
        assert!(
            Instant::now() < until,
            "the daemon kept its unpacked load of {name}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_load_streams_while_the_component_writes() {
    let Some(host) = docker_host() else { return };
    let name = "outport-test/streamed:1";
    let tmp = tempdir();
    let metadata = tmp.path().join("meta.json");
    // The component waits 4 s after writing: the daemon unpacks what it
    // wrote during those, long before the run ends.
    let (run, seen) = watching(&host, name, || {
        export_sample(
            &host,
            &[misbehave("docker-then-sleep", name, 4)],
            &["--metadata-file", path_str(&metadata)],
            &[],
        )
    });
    run.assert_success();
    assert!(
        seen.is_some_and(|before_end| before_end > Duration::from_millis(2500)),
        "the daemon unpacked nothing while the component waited (seen {seen:?} before the end)\n{}",
        run.describe()
    );
    let meta = read_json(&metadata);
    let response = &array_at(&meta, "exporters")[0]["response"];
    let id = docker(&host, &["image", "inspect", "--format", "{{.Id}}", name]);
    assert_eq!(str_at(response, "containerimage.config.digest"), id);
    assert_eq!(str_at(response, "image.name"), name);
}

#[test]
fn a_failed_instance_leaves_nothing_in_the_daemon() {
    let Some(host) = docker_host() else { return };
    let name = "outport-test/cut:1";
    let id = image_id_of(&host, name);
    // Another instance keeps the run going for a while after the failure:
    // what the daemon got of the load is cut then, not when outport exits.
    let tmp = tempdir();
    let lingering = format!(
        "type=wasm,component={},action=docker-then-sleep,name=outport-test/linger:1,pause=6,dest={}",
        outport_test_programs::MISBEHAVE,
        path_str(&tmp.path().join("linger.tar"))
    );
    let (run, seen) = watching(&host, name, || {
        export_sample(
            &host,
            &[misbehave("docker-then-error", name, 2), lingering],
            &[],
            &[],
        )
    });
    run.assert_code(1);
    run.assert_error(&["deliberate failure"], &["failure"]);
    assert!(
        seen.is_some(),
        "the tarball never reached the daemon\n{}",
        run.describe()
    );
    assert!(tmp.path().join("linger.tar").exists(), "{}", run.describe());
    assert_nothing_kept(&host, name, &id);
}

#[test]
fn another_instance_failing_with_fail_fast_cuts_the_load() {
    let Some(host) = docker_host() else { return };
    let name = "outport-test/cancelled:1";
    let id = image_id_of(&host, name);
    let tmp = tempdir();
    let failing = format!(
        "type=wasm,component={},action=docker-then-error,name=outport-test/other:1,pause=2,dest={}",
        outport_test_programs::MISBEHAVE,
        path_str(&tmp.path().join("other.tar"))
    );
    let started = Instant::now();
    let (run, seen) = watching(&host, name, || {
        export_sample(
            &host,
            &[misbehave("docker-then-sleep", name, 60), failing],
            &["--fail-fast"],
            &[],
        )
    });
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "the loading instance was not cancelled\n{}",
        run.describe()
    );
    assert!(
        seen.is_some(),
        "the tarball never reached the daemon\n{}",
        run.describe()
    );
    assert_nothing_kept(&host, name, &id);
}

#[test]
fn bytes_rewritten_after_they_were_sent_are_sent_again() {
    let Some(host) = docker_host() else { return };
    let name = "outport-test/rewritten:1";
    let (run, seen) = watching(&host, "outport-test/rewritten:0", || {
        export_sample(&host, &[misbehave("docker-rewrite", name, 2)], &[], &[])
    });
    run.assert_success();
    assert!(
        seen.is_some(),
        "the first bytes never reached the daemon\n{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("sending the whole file again"),
        "{}",
        run.describe()
    );
    assert!(has_image(&host, name), "{}", run.describe());
    assert!(!has_image(&host, "outport-test/rewritten:0"));
}
