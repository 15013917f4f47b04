//! Loading into the docker daemon (`type=docker` without `dest=`, or
//! `load=true`), against the real dockerd `scripts/test-services` starts:
//! the image and its names as `docker image inspect` shows them, the ID in
//! the response, the metadata file and `--iidfile`, the round trip back
//! through `docker-daemon:` to an OCI archive skopeo reads; a tarball the
//! daemon refuses, a policy forbidding the daemon, a daemon not running, a
//! TCP host (refused unless asked for, then used through a relay to the
//! daemon's socket), and a socket the user may not open.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::daemon::{docker, docker_host, export_with};

/// `outport export SAMPLE` with `outputs`, `DOCKER_HOST=host` and `extra`
/// arguments and environment.
pub(crate) fn export_sample(
    host: &str,
    outputs: &[String],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let cache = tempdir();
    let mut args = vec!["export".into(), sample_image().into_os_string()];
    for spec in outputs {
        args.push("--output".into());
        args.push(spec.into());
    }
    args.extend(extra.iter().map(Into::into));
    run_outport(args, |command| {
        command
            .arg("--cache-dir")
            .arg(cache.path())
            .env("DOCKER_HOST", host)
            .envs(env.iter().copied());
    })
}

/// The image ID of `name` in the daemon, or `None` when it has no such
/// image.
fn image_id(host: &str, name: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .env("DOCKER_HOST", host)
        .output()
        .expect("run docker");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn docker_output_without_dest_is_loaded_and_reads_back() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let (iid, metadata) = (tmp.path().join("iid"), tmp.path().join("meta.json"));
    let run = export_sample(
        &host,
        &["type=docker,name=outport-test/load:1,name=outport-test/load:extra,platform=linux/amd64"
            .to_owned()],
        &["--iidfile", path_str(&iid), "--metadata-file", path_str(&metadata)],
        &[],
    );
    run.assert_success();
    assert!(
        run.stdout_text().contains("the docker daemon"),
        "{}",
        run.describe()
    );
    let id = image_id(&host, "outport-test/load:1").expect("the image is loaded");
    assert_eq!(
        image_id(&host, "outport-test/load:extra").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(std::fs::read_to_string(&iid).expect("read the iidfile"), id);
    let meta = read_json(&metadata);
    let response = &array_at(&meta, "exporters")[0]["response"];
    assert_eq!(str_at(response, "containerimage.config.digest"), id);
    assert_eq!(
        str_at(response, "image.name"),
        "outport-test/load:1,outport-test/load:extra"
    );
    // The daemon's image is the exported one: back out through
    // docker-daemon: as an OCI archive, its config is the image ID.
    let archive = tmp.path().join("back.tar");
    export_with(
        &host,
        "docker-daemon:outport-test/load:1",
        &format!("type=oci,dest={}", path_str(&archive)),
        None,
    )
    .assert_success();
    let manifest = parse_json(
        "manifest",
        skopeo(&["inspect", "--raw", &oci_archive(&archive)]).as_bytes(),
    );
    assert_eq!(str_at(&manifest["config"], "digest"), id);
}

#[test]
fn load_with_dest_writes_the_file_too() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let tarball = tmp.path().join("app.tar");
    export_sample(
        &host,
        &[format!(
            "type=docker,dest={},load=true,name=outport-test/both:1,platform=linux/amd64",
            path_str(&tarball)
        )],
        &[],
        &[],
    )
    .assert_success();
    let id = image_id(&host, "outport-test/both:1").expect("the image is loaded");
    let config = skopeo(&[
        "inspect",
        "--raw",
        "--config",
        &format!("docker-archive:{}", path_str(&tarball)),
    ]);
    assert_eq!(sha256_digest(config.as_bytes()), id);
}

#[test]
fn a_refused_tarball_fails_the_instance_and_tags_nothing() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    // Bytes that are no tarball (dest= too: nothing is written there).
    let garbage = tmp.path().join("garbage.tar");
    let run = export_sample(
        &host,
        &[format!(
            "type=wasm,component={},action=ok,load=true,dest={}",
            outport_test_programs::MISBEHAVE,
            path_str(&garbage)
        )],
        &[],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&[&host], &["refused the image"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    assert!(!garbage.exists());
    // A tagged OCI layout without manifest.json: dockerd's own image store
    // refuses it (the containerd image store would take it).
    let run = export_sample(
        &host,
        &["type=oci,load=true,name=outport-test/refused:1".to_owned()],
        &[],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&[&host], &["refused the image"]);
    assert_eq!(image_id(&host, "outport-test/refused:1"), None);
}

#[test]
fn the_policy_can_forbid_the_daemon_or_ask_for_it() {
    let Some(host) = docker_host() else { return };
    let tmp = tempdir();
    let policy = |rule: &str| {
        let path = tmp.path().join(format!("{rule}.toml"));
        std::fs::write(
            &path,
            format!("[components.docker]\ndestination = \"{rule}\"\n"),
        )
        .expect("write the policy");
        path
    };
    let (file_only, daemon_only) = (policy("file"), policy("daemon"));
    let run = export_sample(
        &host,
        &["type=docker,name=outport-test/forbidden:1,platform=linux/amd64".to_owned()],
        &["--policy", path_str(&file_only)],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&["docker daemon"], &["policy does not let"]);
    assert_eq!(image_id(&host, "outport-test/forbidden:1"), None);
    let tarball = tmp.path().join("x.tar");
    let run = export_sample(
        &host,
        &[format!(
            "type=docker,dest={},platform=linux/amd64",
            path_str(&tarball)
        )],
        &["--policy", path_str(&daemon_only)],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&["docker daemon"], &["only into"]);
    assert!(!tarball.exists());
    export_sample(
        &host,
        &["type=docker,name=outport-test/daemon-only:1,platform=linux/amd64".to_owned()],
        &["--policy", path_str(&daemon_only)],
        &[],
    )
    .assert_success();
    assert!(image_id(&host, "outport-test/daemon-only:1").is_some());
}

#[test]
fn a_daemon_not_running_fails_in_one_line_before_exporting() {
    let tmp = tempdir();
    let missing = format!("unix://{}", path_str(&tmp.path().join("no.sock")));
    let run = export_sample(
        &missing,
        &["type=docker,name=outport-test/nowhere:1,platform=linux/amd64".to_owned()],
        &[],
        &[],
    );
    run.assert_code(1);
    run.assert_error(&[&missing], &["cannot connect"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    // The component never ran: the daemon was asked first.
    assert!(
        !run.stderr.contains("wrote docker tarball"),
        "{}",
        run.describe()
    );
}

/// Relays TCP connections on a loopback port to the unix socket `socket`;
/// returns `tcp://127.0.0.1:PORT`.
fn tcp_relay(socket: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("its address");
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(unix) = UnixStream::connect(&socket) else {
                continue;
            };
            let (mut tcp_in, mut unix_out) = (
                tcp.try_clone().expect("clone"),
                unix.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = io::copy(&mut tcp_in, &mut unix_out);
                let _ = unix_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut unix_in, mut tcp_out) = (unix, tcp);
            std::thread::spawn(move || {
                let _ = io::copy(&mut unix_in, &mut tcp_out);
                let _ = tcp_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("tcp://{address}")
}

#[test]
fn a_tcp_host_only_when_asked_for() {
    let Some(host) = docker_host() else { return };
    let socket = host.strip_prefix("unix://").expect("a unix:// test daemon");
    let tcp = tcp_relay(Path::new(socket));
    let output = "type=docker,name=outport-test/tcp:1,platform=linux/amd64".to_owned();
    let run = export_sample(&tcp, std::slice::from_ref(&output), &[], &[]);
    run.assert_code(1);
    run.assert_error(&[&tcp], &["OUTPORT_DOCKER_ALLOW_TCP"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    let allow = [("OUTPORT_DOCKER_ALLOW_TCP", "1")];
    export_sample(&tcp, &[output], &[], &allow).assert_success();
    assert!(image_id(&host, "outport-test/tcp:1").is_some());
    let tls = [
        ("OUTPORT_DOCKER_ALLOW_TCP", "1"),
        ("DOCKER_TLS_VERIFY", "1"),
    ];
    let run = export_sample(&tcp, &["type=docker,name=x:1".to_owned()], &[], &tls);
    run.assert_code(1);
    run.assert_error(&[&tcp], &["TLS"]);
}

#[test]
fn a_socket_without_permission_is_one_line() {
    if !Path::new("/usr/bin/setpriv").exists() || !is_root() {
        eprintln!("skipped: needs root and setpriv to run outport as nobody");
        return;
    }
    let tmp = tempdir();
    // A listening socket in a directory only root may enter.
    let locked = mkdir(tmp.path(), "locked");
    let _listener = UnixListener::bind(locked.join("sock")).expect("bind a socket");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let open = mkdir(tmp.path(), "open");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let host = format!("unix://{}", path_str(&locked.join("sock")));
    let dest = open.join("out.tar");
    for (input, output) in [
        (
            "docker-daemon:app:1".to_owned(),
            format!("type=oci,dest={}", path_str(&dest)),
        ),
        (
            path_str(&sample_image()).to_owned(),
            "type=docker,name=app:1".to_owned(),
        ),
    ] {
        let mut command = Command::new("/usr/bin/setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        command.arg(env!("CARGO_BIN_EXE_outport"));
        let args = vec![
            "export".into(),
            input.into(),
            "--output".into(),
            output.into(),
        ];
        let run = run_command(command, args, |command| {
            command
                .arg("--cache-dir")
                .arg(open.join("cache"))
                .env("DOCKER_HOST", &host);
        });
        run.assert_code(1);
        run.assert_error(&[&host], &["permission denied"]);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert!(!dest.exists());
    }
}

/// Whether the tests run as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A second load of a name moves the tag, as `docker load` does; the older
/// image stays, untagged.
#[test]
fn a_load_moves_a_tag_from_an_older_image() {
    let Some(host) = docker_host() else { return };
    let name = "outport-test/moved:1";
    let spec = |platform: &str| format!("type=docker,name={name},platform={platform}");
    export_sample(&host, &[spec("linux/amd64")], &[], &[]).assert_success();
    let first = image_id(&host, name).expect("loaded");
    export_sample(&host, &[spec("linux/arm64/v8")], &[], &[]).assert_success();
    let second = image_id(&host, name).expect("loaded");
    assert_ne!(first, second);
    // The older image is still there, by ID.
    docker(&host, &["image", "inspect", &first]);
}
