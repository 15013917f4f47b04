//! Indexes that list indexes (the OCI image spec allows them; skopeo does
//! not push them, so the test `PUT`s them): read to eight levels, a
//! `docker` and a `local` output choosing their platform through them, each
//! output the same bytes as from an OCI layout of the same indexes; one
//! level more is a one-line error naming the request, nothing written.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::tree;
use crate::common::*;
use crate::export_registry::{registry, unique_repo};

/// `PUT`s `body` as the index `tag` of `repo` at `host`.
fn put_index(host: &str, repo: &str, tag: &str, body: &[u8]) {
    let mut stream = TcpStream::connect(host).expect("connect to the registry");
    let head = format!(
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MT_INDEX}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .expect("send the index");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("read the registry's answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "PUT {tag}: {answer}");
}

/// Outputs of every kind that reads an index, a platform chosen for
/// `docker` and `local`, under `dir`.
fn outputs(dir: &Path) -> Vec<String> {
    let at = |name: &str| path_str(&dir.join(name)).to_owned();
    let mut args = Vec::new();
    for spec in [
        format!("type=oci,dest={}", at("oci.tar")),
        format!(
            "type=docker,name=app:1,platform=linux/arm64,dest={}",
            at("docker.tar")
        ),
        format!("type=local,platform=linux/arm64,dest={}", at("local")),
    ] {
        args.extend(["--output".to_owned(), spec]);
    }
    args
}

/// `outport export INPUT` to [`outputs`] in `dir`.
fn export(input: &str, dir: &Path, cache: &Path) -> Run {
    let mut args = vec!["export".to_owned(), input.to_owned()];
    if input.starts_with("docker://") {
        args.push("--src-insecure".into());
    }
    args.extend(outputs(dir));
    let config = mkdir(dir, "docker-config");
    outport_with_cache(&args, cache, &[("DOCKER_CONFIG", path_str(&config))])
}

/// The sample pushed to `repo` with its index's digest kept, then `levels`
/// indexes, each listing the one before (the first, the sample's), pushed
/// as tags `n1`…; a layout in `tmp/layout` holding the sample and the
/// indexes, its `index.json` naming `n{top}` (tag `latest`).
fn nest(tmp: &Path, host: &str, repo: &str, levels: usize, top: usize) -> PathBuf {
    let sample = sample_image();
    skopeo_push_all(&oci_dir(&sample), &format!("docker://{host}/{repo}:inner"));
    let dir = tmp.join("layout");
    copy_dir(&sample, &dir);
    let layout = Layout::open(&dir);
    let listed = read_json(&sample.join("index.json"));
    let first = &array_at(&listed, "manifests")[0];
    let mut entry = json!({
        "mediaType": str_at(first, "mediaType"),
        "digest": str_at(first, "digest"),
        "size": first["size"],
    });
    let mut named: Option<Value> = None;
    for level in 1..=levels {
        let index = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]});
        let bytes = serde_json::to_vec(&index).expect("serialize");
        put_index(host, repo, &format!("n{level}"), &bytes);
        let (digest, size) = layout.add_blob(&bytes);
        entry = json!({"mediaType": MT_INDEX, "digest": digest, "size": size});
        if level == top {
            named = Some(entry.clone());
        }
    }
    let mut named = named.expect("top is one of the levels");
    named["annotations"] = json!({ANN_REF_NAME: "latest"});
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [named],
    }));
    dir
}

#[test]
fn indexes_in_indexes_are_read_to_eight_levels() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let repo = unique_repo("nested");
    // n8: eight indexes above the sample's, nine in all.
    let layout = nest(tmp.path(), &host, &repo, 8, 7);
    let cache = mkdir(tmp.path(), "cache");

    // Eight levels (n7 and the sample's index): read, the platform found.
    let from_layout = mkdir(tmp.path(), "from-layout");
    export(&oci_dir(&layout), &from_layout, &cache).assert_success();
    let from_registry = mkdir(tmp.path(), "from-registry");
    let run = export(
        &format!("docker://{host}/{repo}:n7"),
        &from_registry,
        &cache,
    );
    run.assert_success();
    for file in ["oci.tar", "docker.tar"] {
        assert!(
            std::fs::read(from_layout.join(file)).expect("read")
                == std::fs::read(from_registry.join(file)).expect("read"),
            "{file} differs from the layout's"
        );
    }
    assert!(tree(&from_layout.join("local")) == tree(&from_registry.join("local")));

    // Nine levels: one line naming the request, nothing written.
    let deeper = mkdir(tmp.path(), "deeper");
    let run = export(&format!("docker://{host}/{repo}:n8"), &deeper, &cache);
    run.assert_code(1);
    let error = run.error_text();
    assert!(
        error.lines().count() == 1
            && error.contains(&format!("registry {host}"))
            && error.contains(&format!("GET /v2/{repo}/manifests/sha256:"))
            && error.contains("indexes nest deeper than 8 levels"),
        "{error}"
    );
    for name in ["oci.tar", "docker.tar", "local"] {
        assert!(!deeper.join(name).exists(), "{name} was written");
    }
}
