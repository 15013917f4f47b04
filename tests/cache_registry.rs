//! The registry cache backend against Debian's `docker-registry` (started by
//! `scripts/test`, `scripts/test-services`): BuildKit's shapes as skopeo
//! sees them (blobs uploaded several at once, seen by a counting relay), round trips byte-identical to the local backend's, blobs not
//! uploaded twice, basic auth from a docker config the component never
//! sees, a refusing registry, `ignore-error`, the policy's allow-list, a
//! missing tag.

use std::path::Path;

use serde_json::{Value, json};

use crate::cache_local::{
    BuildkitCache, MT_CACHE_CONFIG, buildkit_cache, cache_import_args, read_cache,
};
use crate::common::relay::InFlight;
use crate::common::*;
use crate::export_registry::{
    AuthRegistry, PARALLEL_UPLOADS, assert_not_pushed, auth_registry, docker_config, registry,
    registry_policy, skopeo_insecure, unique_repo,
};

/// `outport ARGS...` with `DOCKER_CONFIG` set to `config_dir` (never the
/// user's); the metadata file's `"cache"` list when `metadata` is written.
fn run_with_config(args: &[String], config_dir: &Path, metadata: Option<&Path>) -> (Run, Value) {
    let cache = tempdir();
    let run = outport_with_cache(
        args,
        cache.path(),
        &[("DOCKER_CONFIG", path_str(config_dir))],
    );
    let cache_list = match metadata {
        Some(file) if file.exists() => {
            assert_metadata_valid(file);
            read_json(file)["cache"].clone()
        }
        _ => Value::Null,
    };
    (run, cache_list)
}

/// `outport cache export INPUT --export-cache SPEC --metadata-file FILE`
/// with the docker config of `config_dir`; the run and the instance's
/// metadata entry.
fn export(tmp: &Path, input: &Path, spec: &str, config_dir: &Path) -> (Run, Value) {
    let metadata = tmp.join(format!(
        "metadata-{}.json",
        unique_repo("m").replace('/', "-")
    ));
    let args: Vec<String> = [
        "cache",
        "export",
        path_str(input),
        "--export-cache",
        spec,
        "--progress",
        "plain",
        "--metadata-file",
        path_str(&metadata),
    ]
    .map(String::from)
    .to_vec();
    let (run, list) = run_with_config(&args, config_dir, Some(&metadata));
    (run, list.get(0).cloned().unwrap_or(Value::Null))
}

/// `outport cache import --import-cache SPEC --dest DEST` with the docker
/// config of `config_dir`.
fn import(spec: &str, dest: &Path, config_dir: &Path) -> Run {
    run_with_config(&cache_import_args(spec, dest), config_dir, None).0
}

/// The raw manifest or index the registry serves for `reference`.
fn pushed(reference: &str) -> (Value, String) {
    let raw = skopeo_insecure(&["inspect", "--raw", &format!("docker://{reference}")]);
    (parse_json("the pushed cache root", raw.as_bytes()), raw)
}

/// Asserts `root` (of `media_type`) is the BuildKit shape of `bk`: an
/// image manifest whose config is the cache config, or an index listing the
/// layers and then the config.
#[track_caller]
fn assert_buildkit_shape(root: &Value, image_manifest: bool, bk: &BuildkitCache) {
    let config_digest = sha256_digest(&bk.config);
    if image_manifest {
        assert_eq!(str_at(root, "mediaType"), MT_MANIFEST, "{root}");
        assert_eq!(str_at(&root["config"], "mediaType"), MT_CACHE_CONFIG);
        assert_eq!(str_at(&root["config"], "digest"), config_digest);
        let layers: Vec<&str> = array_at(root, "layers")
            .iter()
            .map(|l| str_at(l, "digest"))
            .collect();
        assert_eq!(layers, bk.layers, "{root}");
    } else {
        assert_eq!(str_at(root, "mediaType"), MT_INDEX, "{root}");
        let entries = array_at(root, "manifests");
        let digests: Vec<&str> = entries.iter().map(|l| str_at(l, "digest")).collect();
        let mut expected: Vec<&str> = bk.layers.iter().map(String::as_str).collect();
        expected.push(&config_digest);
        assert_eq!(digests, expected, "{root}");
        assert_eq!(
            entries.last().map(|e| str_at(e, "mediaType")),
            Some(MT_CACHE_CONFIG)
        );
    }
}

#[test]
fn export_has_buildkits_shape_and_imports_like_a_local_export() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &json!({}));
    let bk = buildkit_cache(tmp.path(), "bk", true);
    // Through a relay that sees the uploads in flight: all four blobs (three
    // layers and the cache config) at once.
    let counter = InFlight::puts(&host, PARALLEL_UPLOADS);
    for (image_manifest, extra) in [(true, ""), (false, ",image-manifest=false")] {
        let reference = format!("127.0.0.1:{}/{}:v1", counter.port, unique_repo("shape"));
        let spec = format!("type=registry,ref={reference},registry.insecure=true,mode=max{extra}");
        let (run, entry) = export(tmp.path(), &bk.dir, &spec, &config);
        run.assert_success();
        assert_eq!(counter.peak(), PARALLEL_UPLOADS, "{}", run.describe());
        let (root, raw) = pushed(&reference);
        assert_buildkit_shape(&root, image_manifest, &bk);
        assert_eq!(
            str_at(&entry["response"], "cache.digest"),
            sha256_digest(raw.as_bytes())
        );
        if image_manifest {
            let config_raw = skopeo_insecure(&[
                "inspect",
                "--config",
                "--raw",
                &format!("docker://{reference}"),
            ]);
            assert_eq!(config_raw.as_bytes(), bk.config.as_slice());
        }

        // Import, and a local export of the same input: the same layout.
        let imported = tmp.path().join(format!("imported-{image_manifest}"));
        import(
            &format!("type=registry,ref={reference},registry.insecure=true"),
            &imported,
            &config,
        )
        .assert_success();
        let local = tmp.path().join(format!("local-{image_manifest}"));
        crate::cache_local::cache_export(
            &bk.dir,
            &[format!(
                "type=local,dest={},mode=max,tag=v1{extra}",
                path_str(&local)
            )],
        )
        .assert_success();
        let (back, expected) = (read_cache(&imported, "v1"), read_cache(&local, "v1"));
        assert_eq!(back.config, bk.config);
        assert_eq!(back.config, expected.config);
        assert_eq!(back.layers, expected.layers);
        assert_eq!(back.root_type, expected.root_type);
        let (imported_files, local_files) = (
            LayoutFiles::from_dir(&imported),
            LayoutFiles::from_dir(&local),
        );
        assert_eq!(imported_files.index_json(), local_files.index_json());
        assert_eq!(imported_files.blob_digests(), local_files.blob_digests());
        for digest in imported_files.blob_digests() {
            assert_eq!(
                imported_files.blob(&digest),
                local_files.blob(&digest),
                "{digest}"
            );
        }
        imported_files.verify();
    }
}

#[test]
fn an_image_export_pushes_its_layers_as_a_cache_and_re_export_uploads_nothing() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &json!({}));
    let reference = format!("{host}/{}:main", unique_repo("again"));
    let spec = format!("type=registry,ref={reference},registry.insecure=true,id=regcache");
    let (run, first) = export(tmp.path(), &sample_image(), &spec, &config);
    run.assert_success();
    let uploaded: usize = str_at(&first["response"], "cache.registry.uploaded")
        .parse()
        .unwrap();
    assert!(uploaded > 1, "{first}");
    let log = format!("{}{}", run.stdout_text(), run.stderr);
    assert!(
        log.contains(&format!("{uploaded} blobs uploaded, 0 already present")),
        "{}",
        run.describe()
    );
    let (root, _) = pushed(&reference);
    assert_eq!(str_at(&root["config"], "mediaType"), MT_CACHE_CONFIG);

    let (again, second) = export(tmp.path(), &sample_image(), &spec, &config);
    again.assert_success();
    let response = &second["response"];
    assert_eq!(str_at(response, "cache.registry.uploaded"), "0", "{second}");
    assert_eq!(
        str_at(response, "cache.registry.present"),
        uploaded.to_string()
    );
    assert_eq!(
        str_at(response, "cache.digest"),
        str_at(&first["response"], "cache.digest")
    );
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
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let reference = format!("{host}/{}:auth", unique_repo("auth"));
    let spec =
        format!("type=registry,ref={reference},registry.insecure=true,mode=max,id=authcache");

    let good = mkdir(tmp.path(), "good");
    let config = docker_config(&good, &json!({"auths": {host.clone(): {"auth": encoded}}}));
    let (run, entry) = export(&good, &bk.dir, &spec, &config);
    run.assert_success();
    let imported = tmp.path().join("imported");
    let back = import(
        &format!("type=registry,ref={reference},registry.insecure=true"),
        &imported,
        &config,
    );
    back.assert_success();
    assert_eq!(read_cache(&imported, "auth").config, bk.config);
    let everything = format!(
        "{}{}{}{}{entry}",
        run.stdout_text(),
        run.stderr,
        back.stdout_text(),
        back.stderr
    );
    for secret in [&password, &encoded] {
        assert!(
            !everything.contains(secret.as_str()),
            "a credential leaked:\n{everything}"
        );
    }

    let wrong = mkdir(tmp.path(), "wrong");
    let config = docker_config(
        &wrong,
        &json!({"auths": {host.clone(): {"username": user, "password": "not-the-password"}}}),
    );
    let (run, entry) = export(&wrong, &bk.dir, &spec, &config);
    run.assert_code(1);
    run.assert_error(&["authcache"], &["refused the credentials"]);
    assert!(str_at(&entry, "error").contains(&host), "{entry}");
    assert!(!run.stderr.contains(&password), "{}", run.describe());
}

#[test]
fn a_read_only_registry_fails_the_cache_alone_or_is_ignored() {
    let host = registry("OUTPORT_TEST_REGISTRY_READONLY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &json!({}));
    for ignore in [false, true] {
        let image_out = tmp.path().join(format!("image-{ignore}.tar"));
        let metadata = tmp.path().join(format!("metadata-{ignore}.json"));
        let args: Vec<String> = [
            "export",
            path_str(&sample_image()),
            "--output",
            &format!("type=oci,dest={},id=file", path_str(&image_out)),
            "--export-cache",
            &format!(
                "type=registry,ref={host}/{}:ro,registry.insecure=true,id=rocache,ignore-error={ignore}",
                unique_repo("ro")
            ),
            "--metadata-file",
            path_str(&metadata),
        ]
        .map(String::from)
        .to_vec();
        let (run, cache) = run_with_config(&args, &config, Some(&metadata));
        let entry = &cache[0];
        assert_eq!(str_at(entry, "status"), "failed", "{entry}");
        let error = str_at(entry, "error");
        assert!(
            error.contains(&host) && error.contains("405") && !error.contains('\n'),
            "{error}"
        );
        if ignore {
            run.assert_success();
            assert_eq!(entry["ignore_error"], true, "{entry}");
        } else {
            run.assert_code(1);
            run.assert_error(&["rocache"], &["405 Method Not Allowed"]);
        }
        assert_eq!(
            str_at(exporter_entry(&read_json(&metadata), "file"), "status"),
            "ok"
        );
        LayoutFiles::from_tar(&image_out).verify();
    }
}

#[test]
fn the_policy_network_hosts_must_allow_the_ref() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &json!({}));
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let reference = format!("{host}/{}:policy", unique_repo("policy"));
    let with_policy = |file: &str, hosts: &str| {
        let policy = registry_policy(tmp.path(), file, hosts);
        let args: Vec<String> = [
            "cache",
            "export",
            path_str(&bk.dir),
            "--export-cache",
            &format!("type=registry,ref={reference},registry.insecure=true,id=pcache"),
            "--policy",
            path_str(&policy),
        ]
        .map(String::from)
        .to_vec();
        run_with_config(&args, &config, None).0
    };
    let run = with_policy("strict.toml", "\"registry.example.com\"");
    run.assert_code(2);
    run.assert_error(&["pcache"], &["network-hosts"]);
    assert!(run.error_text().contains(&host), "{}", run.describe());
    assert_not_pushed(&reference);
    with_policy("loopback.toml", "\"127.0.0.1\"").assert_success();
    pushed(&reference);
}

#[test]
fn importing_a_missing_tag_leaves_the_destination_untouched() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let config = docker_config(tmp.path(), &json!({}));
    let reference = format!("{host}/{}:nope", unique_repo("missing"));
    let dest = tmp.path().join("imported");
    let run = import(
        &format!("type=registry,ref={reference},registry.insecure=true,id=missing"),
        &dest,
        &config,
    );
    run.assert_code(1);
    run.assert_error(&["missing"], &["has no cache"]);
    assert!(run.error_text().contains(&reference), "{}", run.describe());
    assert_empty_or_absent(&dest);
}

#[test]
fn registry_cache_docs_match_describe() {
    crate::cache_local::assert_docs_match_describe("registry");
}
