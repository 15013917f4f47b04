//! The `registry` exporter end to end, against Debian's `docker-registry`
//! started by `scripts/test` (`scripts/test-services`) on 127.0.0.1: pushes
//! of the single- and multi-platform sample checked with skopeo, blobs not
//! uploaded twice, basic auth from a docker config the guest never sees,
//! the policy's allow-list, a registry that refuses, nothing listening,
//! blob uploads several at once (seen by a counting relay); credential
//! helpers in `helpers`; the token-auth registry (both flows, push and
//! pull) in `token`.

use serde_json::Value;

use crate::common::relay::{BlobUnknown, InFlight};
use crate::common::*;
use crate::export_rootfs::{crafted, file, layer_tar};

mod helpers;
mod names;
mod registries;
mod token;

pub(crate) use registries::*;

#[test]
fn pushes_the_multi_platform_sample_then_skips_present_blobs() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let name = format!("{host}/{}:multi", unique_repo("multi"));
    let oci = tmp.path().join("sibling.tar");
    let outputs = [
        format!("type=registry,name={name},registry.insecure=true,id=push"),
        format!("type=oci,dest={},id=file", path_str(&oci)),
    ];
    let (run, meta) = push(tmp.path(), &sample_image(), &outputs, &[], &config);
    run.assert_success();
    let response = &exporter_entry(&meta, "push")["response"];
    let digest = str_at(response, "containerimage.digest");
    assert_eq!(str_at(response, "image.name"), name);
    // The pushed root is the index the oci output wrote, byte for byte.
    assert_eq!(
        digest,
        str_at(
            &exporter_entry(&meta, "file")["response"],
            "containerimage.digest"
        )
    );
    assert_eq!(pushed_digest(&name), digest);
    let index: Value = parse_json(
        "pushed index",
        skopeo_insecure(&["inspect", "--raw", &format!("docker://{name}")]).as_bytes(),
    );
    assert_eq!(index_platforms(&index), sample_platforms());
    // Every blob comes back with its digest checked.
    let back = tmp.path().join("back");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--all",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &oci_dir(&back),
    ]);
    let copied = LayoutFiles::from_dir(&back);
    copied.verify();
    assert_eq!(
        str_at(&copied.index_json()["manifests"][0], "digest"),
        digest
    );
    assert!(uploaded(&run, "push") > 0, "{}", run.describe());

    // Again: every blob is there, none is uploaded.
    let (again, meta2) = push(tmp.path(), &sample_image(), &outputs[..1], &[], &config);
    again.assert_success();
    assert_eq!(uploaded(&again, "push"), 0, "{}", again.describe());
    assert_eq!(
        str_at(
            &exporter_entry(&meta2, "push")["response"],
            "containerimage.digest"
        ),
        digest
    );
}

/// Blob `PUT`s the registry exporter and cache keep in flight at once (the
/// SDK's `distribution::PARALLEL_UPLOADS`).
pub(crate) const PARALLEL_UPLOADS: usize = 4;

#[test]
fn blobs_are_uploaded_several_at_once_and_the_image_verifies() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    // The single-platform sample with six more layers.
    let names: Vec<String> = (0..6).map(|i| format!("layer-{i}.bin")).collect();
    let data: Vec<Vec<u8>> = (0..6).map(|i| noise((300 << 10) + i)).collect();
    let layers: Vec<Vec<u8>> = names
        .iter()
        .zip(&data)
        .map(|(name, bytes)| layer_tar(&[file(name, bytes)]))
        .collect();
    let input = crafted(tmp.path(), &layers);
    let repo = unique_repo("parallel");
    let counter = InFlight::puts(&host, PARALLEL_UPLOADS);
    let via_relay = format!("127.0.0.1:{}/{repo}:many", counter.port);
    let outputs = [format!(
        "type=registry,name={via_relay},registry.insecure=true,id=push"
    )];
    let (run, meta) = push(tmp.path(), &input, &outputs, &[], &config);
    run.assert_success();
    assert_eq!(
        counter.peak(),
        PARALLEL_UPLOADS,
        "blob uploads in flight at once\n{}",
        run.describe()
    );
    // The registry itself has the image, every blob's digest checked.
    let name = format!("{host}/{repo}:many");
    let digest = str_at(
        &exporter_entry(&meta, "push")["response"],
        "containerimage.digest",
    );
    assert_eq!(pushed_digest(&name), digest);
    let manifest: Value = parse_json(
        "pushed manifest",
        skopeo_insecure(&["inspect", "--raw", &format!("docker://{name}")]).as_bytes(),
    );
    let blobs = array_at(&manifest, "layers").len() + 1;
    assert!(blobs >= 8, "{manifest}");
    assert_eq!(uploaded(&run, "push"), blobs, "{}", run.describe());
    let back = tmp.path().join("back");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &oci_dir(&back),
    ]);
    LayoutFiles::from_dir(&back).verify();

    // Again: every blob is there, none is uploaded.
    let (again, _) = push(tmp.path(), &input, &outputs, &[], &config);
    again.assert_success();
    assert_eq!(uploaded(&again, "push"), 0, "{}", again.describe());
}

#[test]
fn pushes_a_single_platform_image_as_type_image() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let input = single_platform_sample(tmp.path(), "single", "arm64", "v1");
    let repo = unique_repo("single");
    let name = format!("{host}/{repo}:one");
    let by_digest = format!("{host}/{repo}-digest");
    let outputs = [
        format!("type=image,push=true,name={name},registry.insecure=true,id=push"),
        format!(
            "type=registry,name={by_digest}:unused,push-by-digest=true,registry.insecure=true,id=bydigest"
        ),
    ];
    let (run, meta) = push(tmp.path(), &input, &outputs, &[], &config);
    run.assert_success();
    let response = &exporter_entry(&meta, "push")["response"];
    let digest = str_at(response, "containerimage.digest");
    assert_eq!(pushed_digest(&name), digest);
    let config_raw =
        skopeo_insecure(&["inspect", "--config", "--raw", &format!("docker://{name}")]);
    assert_eq!(
        sha256_digest(config_raw.as_bytes()),
        str_at(response, "containerimage.config.digest")
    );
    // The metadata file shows the descriptor decoded.
    assert_eq!(
        str_at(&response["containerimage.descriptor"], "digest"),
        digest
    );
    // By digest: reachable by its digest, no tag set.
    assert_eq!(pushed_digest(&format!("{by_digest}@{digest}")), digest);
    assert_not_pushed(&format!("{by_digest}:unused"));
}

/// A registry that answers a manifest `PUT` with `MANIFEST_BLOB_UNKNOWN`
/// (distribution does while another push of the same blob rewrites its
/// link) is asked again, three times at most: the push succeeds after two
/// such answers, and fails with the registry's answer after four.
#[test]
fn a_manifest_put_answered_blob_unknown_is_retried() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    for (times, succeeds) in [(2, true), (4, false)] {
        let relay = BlobUnknown::start(&host, times);
        let repo = unique_repo("blob-unknown");
        let name = format!("127.0.0.1:{}/{repo}:x", relay.port);
        let outputs = [format!(
            "type=registry,name={name},registry.insecure=true,id=push"
        )];
        let (run, meta) = push(tmp.path(), &sample_image(), &outputs, &[], &config);
        assert_eq!(relay.refused(), times, "{}", run.describe());
        if succeeds {
            run.assert_success();
            let digest = str_at(
                &exporter_entry(&meta, "push")["response"],
                "containerimage.digest",
            );
            assert_eq!(pushed_digest(&format!("{host}/{repo}:x")), digest);
        } else {
            run.assert_code(1);
            run.assert_error(&["push"], &["MANIFEST_BLOB_UNKNOWN"]);
            assert_not_pushed(&format!("{host}/{repo}:x"));
        }
    }
}

#[test]
fn image_options_apply_to_a_push() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let input = single_platform_sample(tmp.path(), "single", "amd64", "v1");
    let repo = unique_repo("options");
    let zstd = format!("{host}/{repo}:zstd");
    let docker = format!("{host}/{repo}:docker");
    let outputs = [
        format!(
            "type=registry,name={zstd},registry.insecure=true,compression=zstd,force-compression=true,id=zstd"
        ),
        format!(
            "type=registry,name={docker},registry.insecure=true,compression=gzip,oci-mediatypes=false,id=docker"
        ),
    ];
    let (run, meta) = push(tmp.path(), &input, &outputs, &[], &config);
    run.assert_success();
    for (id, name, manifest_type, layer_type) in [
        (
            "zstd",
            &zstd,
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "docker",
            &docker,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
    ] {
        let raw = skopeo_insecure(&["inspect", "--raw", &format!("docker://{name}")]);
        let manifest = parse_json("manifest", raw.as_bytes());
        assert_eq!(str_at(&manifest, "mediaType"), manifest_type, "{id}: {raw}");
        let layers = manifest["layers"].as_array().expect("layers");
        assert!(!layers.is_empty(), "{id}: {raw}");
        for layer in layers {
            assert_eq!(str_at(layer, "mediaType"), layer_type, "{id}: {raw}");
        }
        let response = &exporter_entry(&meta, id)["response"];
        assert_eq!(
            sha256_digest(raw.as_bytes()),
            str_at(response, "containerimage.digest")
        );
        // The registry serves every layer whole: skopeo copies it back
        // and checks each blob against its digest.
        let back = tmp.path().join(format!("back-{id}"));
        skopeo_insecure(&[
            "copy",
            &format!("docker://{name}"),
            &format!("oci:{}:x", path_str(&back)),
        ]);
    }
}

#[test]
fn type_image_without_push_is_refused_before_any_work() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let outputs = [format!(
        "type=image,name={host}/{}:x,registry.insecure=true",
        unique_repo("nopush")
    )];
    let (run, _) = push(tmp.path(), &sample_image(), &outputs, &[], &config);
    run.assert_code(1);
    run.assert_error(&["push=false"], &["no image store"]);
}

#[test]
fn basic_auth_comes_from_the_docker_config_and_stays_on_the_host() {
    let AuthRegistry {
        host,
        user,
        password,
        encoded,
    } = auth_registry();
    let tmp = tempdir();
    let name = format!("{host}/{}:auth", unique_repo("auth"));
    let outputs = [format!(
        "type=registry,name={name},registry.insecure=true,id=push"
    )];

    let good = tmp.path().join("good");
    std::fs::create_dir(&good).expect("mkdir");
    let config = docker_config(
        &good,
        &serde_json::json!({"auths": {host.clone(): {"auth": encoded}}}),
    );
    let (run, meta) = push(&good, &sample_image(), &outputs, &[], &config);
    run.assert_success();
    let digest = str_at(
        &exporter_entry(&meta, "push")["response"],
        "containerimage.digest",
    );
    let pulled = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("--creds={user}:{password}"),
        &format!("docker://{name}"),
    ]);
    assert_eq!(sha256_digest(pulled.as_bytes()), digest);
    // Nothing the guest could log or return carries the secret.
    let everything = format!("{}{}{meta}", run.stdout_text(), run.stderr);
    for secret in [&password, &encoded] {
        assert!(
            !everything.contains(secret.as_str()),
            "a credential leaked:\n{everything}"
        );
    }

    let wrong = tmp.path().join("wrong");
    std::fs::create_dir(&wrong).expect("mkdir");
    let config = docker_config(
        &wrong,
        &serde_json::json!({"auths": {host.clone(): {"username": user, "password": "not-the-password"}}}),
    );
    let (run, _) = push(&wrong, &sample_image(), &outputs, &[], &config);
    run.assert_code(1);
    run.assert_error(&[&host], &["refused the credentials"]);

    let none = tmp.path().join("none");
    std::fs::create_dir(&none).expect("mkdir");
    let config = docker_config(&none, &serde_json::json!({}));
    let (run, _) = push(&none, &sample_image(), &outputs, &[], &config);
    run.assert_code(1);
    run.assert_error(&[&host], &["no credentials"]);
}

#[test]
fn the_policy_network_hosts_replace_the_names_default() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let name = format!("{host}/{}:policy", unique_repo("policy"));
    let outputs = [format!(
        "type=registry,name={name},registry.insecure=true,id=push"
    )];

    let with_policy = |file: &str, hosts: &str| {
        let policy = registry_policy(tmp.path(), file, hosts);
        push(
            tmp.path(),
            &sample_image(),
            &outputs,
            &["--policy", path_str(&policy)],
            &config,
        )
        .0
    };
    let run = with_policy("strict.toml", "\"registry.example.com\"");
    run.assert_code(2);
    run.assert_error(&[&host], &["network-hosts"]);
    // Refused before any request: the repository does not exist.
    assert_not_pushed(&name);

    let run = with_policy("loopback.toml", "\"127.0.0.1\"");
    run.assert_success();
}

#[test]
fn a_refusing_registry_fails_its_instance_alone() {
    let host = registry("OUTPORT_TEST_REGISTRY_READONLY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let oci = tmp.path().join("sibling.tar");
    let outputs = [
        format!(
            "type=registry,name={host}/{}:ro,registry.insecure=true,id=push",
            unique_repo("ro")
        ),
        format!("type=oci,dest={},id=file", path_str(&oci)),
    ];
    let (run, meta) = push(tmp.path(), &sample_image(), &outputs, &[], &config);
    run.assert_code(1);
    run.assert_error(&["push", &host], &["405 Method Not Allowed"]);
    assert_eq!(str_at(exporter_entry(&meta, "file"), "status"), "ok");
    assert_eq!(str_at(exporter_entry(&meta, "push"), "status"), "failed");
    LayoutFiles::from_tar(&oci).verify();
}

#[test]
fn nothing_listening_is_a_clear_error() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let outputs = [format!(
        "type=registry,name=127.0.0.1:{port}/x:1,registry.insecure=true,id=push"
    )];
    let (run, meta) = push(
        tmp.path(),
        &sample_image(),
        &outputs,
        &["--timeout", "120"],
        &config,
    );
    run.assert_code(1);
    run.assert_error(&[&format!("127.0.0.1:{port}")], &["connection refused"]);
    let error = str_at(exporter_entry(&meta, "push"), "error");
    assert!(
        !error.contains('\n') && !error.contains("time limit"),
        "{error}"
    );
}

#[test]
fn a_connection_that_drops_fails_its_instance_alone() {
    // A "registry" that reads each request's head and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 512];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            drop(stream);
        }
    });
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let dest = tmp.path().join("good.tar");
    let outputs = [
        format!("type=registry,name=127.0.0.1:{port}/x:1,registry.insecure=true,id=push"),
        format!("type=oci,dest={},id=good", path_str(&dest)),
    ];
    let (run, meta) = push(
        tmp.path(),
        &sample_image(),
        &outputs,
        &["--timeout", "120"],
        &config,
    );
    run.assert_code(1);
    let error = str_at(exporter_entry(&meta, "push"), "error");
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    assert!(
        !error.contains('\n') && !error.contains("time limit"),
        "{error}"
    );
    assert_eq!(str_at(exporter_entry(&meta, "good"), "status"), "ok");
    let index = skopeo_json(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", path_str(&dest)),
    ]);
    assert!(index["manifests"].is_array(), "{index}");
}
