//! The docker daemon as an input (`docker-daemon:NAME`), against a real
//! dockerd that `scripts/test-services` starts (`OUTPORT_TEST_DOCKER_HOST`):
//! images are put into it with `docker load` of outport's own docker
//! tarballs (nothing is pulled), read back by name and by image ID (a save
//! without tags: `"RepoTags": null`), and from `docker save` on standard
//! input. The bad inputs need no daemon.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

/// The test daemon's `DOCKER_HOST`; `None` (with one line saying why) when
/// dockerd cannot run on this machine and CI is not true.
pub(crate) fn docker_host() -> Option<String> {
    if let Ok(host) = std::env::var("OUTPORT_TEST_DOCKER_HOST") {
        return Some(host);
    }
    match std::env::var("OUTPORT_TEST_DOCKER_UNAVAILABLE") {
        Ok(reason) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: no docker daemon: {reason}");
            None
        }
        _ => panic!(
            "OUTPORT_TEST_DOCKER_HOST is not set: the daemon tests need the dockerd scripts/test starts; run scripts/test"
        ),
    }
}

/// `docker ARGS` against `host`; panics with its stderr when it fails.
pub(crate) fn docker(host: &str, args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `outport export INPUT --output SPEC` with `DOCKER_HOST=host` and
/// optionally `stdin`.
pub(crate) fn export_with(host: &str, input: &str, spec: &str, stdin: Option<&Path>) -> Run {
    let cache = tempdir();
    let args: Vec<OsString> = vec![
        "export".into(),
        input.into(),
        "--output".into(),
        spec.into(),
    ];
    run_outport(args, |command| {
        command
            .arg("--cache-dir")
            .arg(cache.path())
            .env("DOCKER_HOST", host);
        if let Some(path) = stdin {
            command.stdin(Stdio::from(fs::File::open(path).expect("open stdin file")));
        }
    })
}

/// Loads the sample's amd64 image into the daemon as `name` (outport's
/// docker tarball, `docker load`); returns the image ID.
fn load_sample(host: &str, tmp: &Path, name: &str) -> String {
    let tarball = tmp.join("load.tar");
    let spec = format!(
        "type=docker,dest={},name={name},platform=linux/amd64",
        path_str(&tarball)
    );
    export(sample_image().as_os_str(), &[spec], None).assert_success();
    docker(host, &["load", "-i", path_str(&tarball)]);
    docker(host, &["image", "inspect", "--format", "{{.Id}}", name])
}

/// The config digest of the image in OCI layout `dir`.
fn config_digest(dir: &Path) -> String {
    let files = LayoutFiles::from_dir(dir);
    files.verify();
    let manifest = files.blob_json(str_at(&files.root(), "digest"));
    str_at(&manifest["config"], "digest").to_owned()
}

#[test]
fn daemon_image_by_name_and_by_id() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let id = load_sample(&host, tmp.path(), "outport-test/daemon-input:1");
    for (n, input) in [
        "docker-daemon:outport-test/daemon-input:1".to_owned(),
        // By ID: the save lists no tags ("RepoTags": null).
        format!("docker-daemon:{id}"),
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{n}"));
        let run = export_with(
            &host,
            input,
            &format!("type=oci,tar=false,dest={}", path_str(&out)),
            None,
        );
        run.assert_success();
        assert_eq!(config_digest(&out), id, "{input}");
        skopeo_json(&["inspect", "--raw", &oci_dir(&out)]);
    }
}

#[test]
fn docker_save_on_stdin_unpacks_a_rootfs() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let id = load_sample(&host, tmp.path(), "outport-test/stdin-save:1");
    for (n, name) in ["outport-test/stdin-save:1", id.as_str()]
        .iter()
        .enumerate()
    {
        let save = tmp.path().join(format!("save{n}.tar"));
        docker(&host, &["save", "-o", path_str(&save), name]);
        let rootfs = tmp.path().join(format!("rootfs{n}"));
        export_with(
            &host,
            "-",
            &format!("type=local,dest={}", path_str(&rootfs)),
            Some(&save),
        )
        .assert_success();
        assert!(!dir_names(&rootfs).is_empty());
        let layout = tmp.path().join(format!("layout{n}"));
        export_with(
            &host,
            "-",
            &format!("type=oci,tar=false,dest={}", path_str(&layout)),
            Some(&save),
        )
        .assert_success();
        assert_eq!(config_digest(&layout), id, "{name}");
    }
}

#[test]
fn image_the_daemon_lacks_fails_naming_the_daemon() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let run = export_with(
        &host,
        "docker-daemon:outport-test/absent:1",
        &format!("type=oci,dest={}", path_str(&out)),
        None,
    );
    run.assert_code(1);
    run.assert_error(&[&host], &["no such image", "does not exist", "not found"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    assert!(!out.exists());
}

#[test]
fn daemon_not_running_or_tcp_is_one_line() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let spec = format!("type=oci,dest={}", path_str(&out));
    let missing = format!("unix://{}", path_str(&tmp.path().join("no.sock")));
    for (host, words) in [
        (missing.as_str(), &["cannot connect"][..]),
        ("tcp://127.0.0.1:2375", &["tcp docker host is refused"][..]),
    ] {
        let run = export_with(host, "docker-daemon:app:1", &spec, None);
        run.assert_code(1);
        run.assert_error(&[host], words);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert!(!out.exists());
    }
}
