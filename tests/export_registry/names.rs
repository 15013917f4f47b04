//! Several `name=`s in one push: each registry gets the blobs once, the
//! other names of the same registry mount them (cross-repository mounts),
//! and a registry that refuses mounts gets the upload; a push to the
//! registry a `docker://` input came from mounts from the input's
//! repository.

use serde_json::Value;

use super::*;
use crate::common::relay::{NoMount, Requests};
use crate::export_rootfs::{crafted, file, layer_tar};

/// `(uploaded, present, mounted)` from the log line of the push to `name`.
#[track_caller]
pub(super) fn counts(run: &Run, name: &str) -> (usize, usize, usize) {
    let text = format!("{}{}", run.stdout_text(), run.stderr);
    let prefix = format!("[push] pushed {name}: ");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no push log line for {name}\n{}", run.describe()));
    let number = |word: &str| -> usize {
        line.split(", ")
            .find_map(|part| part.strip_suffix(word))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {word:?} in {line:?}"))
    };
    (
        number(" blobs uploaded"),
        number(" already present"),
        number(" mounted"),
    )
}

/// The number of blobs (config and layers) of the manifest under `name`.
fn blob_count(name: &str) -> usize {
    let manifest: Value = parse_json(
        "pushed manifest",
        skopeo_insecure(&["inspect", "--raw", &format!("docker://{name}")]).as_bytes(),
    );
    array_at(&manifest, "layers").len() + 1
}

/// A single-platform image with one layer of its own.
fn one_layer_image(dir: &std::path::Path) -> std::path::PathBuf {
    crafted(dir, &[layer_tar(&[file("a.bin", &noise(200 << 10))])])
}

#[test]
fn names_on_one_registry_mount_what_the_first_uploaded() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let auth = auth_registry();
    let tmp = tempdir();
    let config = docker_config(
        tmp.path(),
        &serde_json::json!({"auths": {auth.host.clone(): {"auth": auth.encoded}}}),
    );
    let names = [
        format!("{host}/{}:one", unique_repo("names-a")),
        format!("{host}/{}:two", unique_repo("names-b")),
        format!("{}/{}:three", auth.host, unique_repo("names-c")),
    ];
    let outputs = [format!(
        "type=registry,\"name={}\",registry.insecure=true,id=push",
        names.join(",")
    )];
    let input = one_layer_image(tmp.path());
    let (run, meta) = push(tmp.path(), &input, &outputs, &[], &config);
    run.assert_success();
    let digest = str_at(
        &exporter_entry(&meta, "push")["response"],
        "containerimage.digest",
    );
    let blobs = blob_count(&names[0]);
    // The first name of each registry uploads everything; the second name
    // of the plain registry mounts everything.
    assert_eq!(counts(&run, &names[0]), (blobs, 0, 0));
    assert_eq!(counts(&run, &names[1]), (0, 0, blobs));
    for name in &names[..2] {
        assert_eq!(pushed_digest(name), digest, "{name}");
    }
    let pulled = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("--creds={}:{}", auth.user, auth.password),
        &format!("docker://{}", names[2]),
    ]);
    assert_eq!(sha256_digest(pulled.as_bytes()), digest);
    assert_eq!(counts(&run, &names[2]), (blobs, 0, 0));
    // The mounted repository serves every blob, digests checked.
    let back = tmp.path().join("back");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{}", names[1]),
        &oci_dir(&back),
    ]);
    LayoutFiles::from_dir(&back).verify();
}

#[test]
fn a_registry_that_refuses_mounts_gets_the_upload() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let relay = NoMount::start(&host);
    let repos = [unique_repo("nomount-a"), unique_repo("nomount-b")];
    let via = |repo: &str| format!("127.0.0.1:{}/{repo}:1", relay.port);
    let outputs = [format!(
        "type=registry,\"name={},{}\",registry.insecure=true,id=push",
        via(&repos[0]),
        via(&repos[1])
    )];
    let input = one_layer_image(tmp.path());
    let (run, meta) = push(tmp.path(), &input, &outputs, &[], &config);
    run.assert_success();
    let direct = format!("{host}/{}:1", repos[1]);
    let blobs = blob_count(&direct);
    assert_eq!(counts(&run, &via(&repos[1])), (blobs, 0, 0));
    assert_eq!(relay.refused(), blobs);
    assert_eq!(
        pushed_digest(&direct),
        str_at(
            &exporter_entry(&meta, "push")["response"],
            "containerimage.digest"
        )
    );
    let back = tmp.path().join("back");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{direct}"),
        &oci_dir(&back),
    ]);
    LayoutFiles::from_dir(&back).verify();
}

#[test]
fn a_push_to_the_inputs_registry_mounts_from_the_inputs_repository() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &serde_json::json!({}));
    let relay = Requests::start(&host);
    let at = |repo: &str| format!("127.0.0.1:{}/{repo}:1", relay.port);
    let source = at(&unique_repo("mount-source"));
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &oci_dir(&one_layer_image(tmp.path())),
        &format!("docker://{source}"),
    ]);
    let source_repo = source.split_once('/').map(|(_, r)| r).unwrap_or_default();
    let source_repo = source_repo.trim_end_matches(":1").to_owned();
    let blobs = blob_count(&source);
    // As it is, every blob (config and layers) is the input's; with its
    // layers recompressed, only the config is.
    for (case, extra, mounted) in [
        ("same", "", blobs),
        ("zstd", ",compression=zstd,force-compression=true", 1),
    ] {
        let name = at(&unique_repo(&format!("mount-{case}")));
        let before = relay.lines().len();
        let mut args = vec![
            "export".to_owned(),
            format!("docker://{source}"),
            "--src-insecure".into(),
            "--progress".into(),
            "plain".into(),
            "--output".into(),
            format!("type=registry,name={name},registry.insecure=true,id=push{extra}"),
        ];
        args.extend([
            "--metadata-file".into(),
            path_str(&tmp.path().join(format!("{case}.json"))).into(),
        ]);
        let cache = mkdir(tmp.path(), &format!("cache-{case}"));
        let run = outport_with_cache(&args, &cache, &[("DOCKER_CONFIG", path_str(&config))]);
        run.assert_success();
        assert_eq!(counts(&run, &name), (blobs - mounted, 0, mounted), "{case}");
        let lines = relay.lines()[before..].to_vec();
        let from = format!("&from={}", source_repo.replace('/', "%2F"));
        let mounts = lines
            .iter()
            .filter(|l| {
                l.starts_with("POST ") && l.contains("?mount=sha256%3A") && l.contains(&from)
            })
            .count();
        assert_eq!(mounts, blobs, "{case}: {lines:#?}");
        let puts = lines
            .iter()
            .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
            .count();
        assert_eq!(puts, blobs - mounted, "{case}: {lines:#?}");
        let meta = read_json(&tmp.path().join(format!("{case}.json")));
        let direct = name.replacen(&format!("127.0.0.1:{}", relay.port), &host, 1);
        assert_eq!(
            pushed_digest(&direct),
            str_at(
                &exporter_entry(&meta, "push")["response"],
                "containerimage.digest"
            )
        );
        let back = tmp.path().join(format!("back-{case}"));
        skopeo(&[
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{direct}"),
            &oci_dir(&back),
        ]);
        LayoutFiles::from_dir(&back).verify();
    }
}
