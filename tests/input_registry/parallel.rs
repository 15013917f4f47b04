//! The download bound: a pull has at most four blob downloads in flight
//! per registry (`input/download.rs`'s `PARALLEL`), however many
//! instances read layers at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::relay::InFlight;
use crate::common::*;
use crate::export_registry::{registry, unique_repo};
use crate::export_rootfs::{file, layer_tar};

/// Blob downloads in flight at once per registry (`download.rs`).
const PARALLEL_DOWNLOADS: usize = 4;

/// One platform per layer: eight instances each want another layer.
const ARCHES: [&str; 8] = [
    "amd64", "arm64", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
];

/// An OCI layout in `tmp/layout` holding one index (tag `latest`) of one
/// manifest per arch of [`ARCHES`], each with a config and one
/// uncompressed layer of 1 MiB of its own (`salt` in it); the layout and
/// the layers' digests.
fn eight_platforms(tmp: &Path, salt: &str) -> (PathBuf, Vec<String>) {
    let dir = mkdir(tmp, "layout");
    mkdir(&dir, "blobs/sha256");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    let layout = Layout::open(&dir);
    let add_json = |value: serde_json::Value| {
        let bytes = serde_json::to_vec(&value).expect("serialize");
        layout.add_blob(&bytes)
    };
    let mut layers = Vec::new();
    let mut manifests = Vec::new();
    for (i, arch) in ARCHES.iter().enumerate() {
        let mut data = noise(1 << 20);
        data.extend_from_slice(format!("{salt} layer {i}").as_bytes());
        let (layer, layer_size) = layout.add_blob(&layer_tar(&[file("layer.bin", &data)]));
        let (config, config_size) = add_json(json!({
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        }));
        let (manifest, manifest_size) = add_json(json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config, "size": config_size},
            "layers": [{"mediaType": MT_LAYER_PLAIN, "digest": layer, "size": layer_size}],
        }));
        manifests.push(json!({
            "mediaType": MT_MANIFEST,
            "digest": manifest,
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
        }));
        layers.push(layer);
    }
    let (index, index_size) = add_json(json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": manifests,
    }));
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_INDEX,
            "digest": index,
            "size": index_size,
            "annotations": {ANN_REF_NAME: "latest"},
        }],
    }));
    (dir, layers)
}

/// One `docker` output per arch into `dir`.
fn one_output_per_platform(dir: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for arch in ARCHES {
        let dest = dir.join(format!("{arch}.tar"));
        args.push("--output".to_owned());
        args.push(format!(
            "type=docker,platform=linux/{arch},name=app:1,dest={}",
            path_str(&dest)
        ));
    }
    args
}

#[test]
fn at_most_four_layers_are_downloaded_at_once() {
    let host = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let reference = format!("{host}/{}:1", unique_repo("bounded"));
    let (layout, layers) = eight_platforms(tmp.path(), &reference);
    skopeo_push_all(&oci_dir(&layout), &format!("docker://{reference}"));
    // What each output must be: the same export from the layout.
    let expected = mkdir(tmp.path(), "expected");
    let mut args = vec!["export".to_owned(), oci_dir(&layout)];
    args.extend(one_output_per_platform(&expected));
    outport(&args).assert_success();

    // Eight instances each read their platform's layer at once; the relay
    // holds the layers' answers until four are in flight, then 200 ms
    // more, so that a fifth download, if one were started, is seen.
    let relay = InFlight::blob_gets(
        &host,
        layers,
        PARALLEL_DOWNLOADS,
        Duration::from_millis(200),
    );
    let via = reference.replacen(&host, &format!("127.0.0.1:{}", relay.port), 1);
    let got = mkdir(tmp.path(), "got");
    let mut args = vec![
        "export".to_owned(),
        format!("docker://{via}"),
        "--src-insecure".into(),
    ];
    args.extend(one_output_per_platform(&got));
    let config = mkdir(tmp.path(), "docker-config");
    let cache = mkdir(tmp.path(), "cache");
    let run = outport_with_cache(&args, &cache, &[("DOCKER_CONFIG", path_str(&config))]);
    run.assert_success();
    assert_eq!(
        relay.peak(),
        PARALLEL_DOWNLOADS,
        "layer downloads in flight at once\n{}",
        run.describe()
    );
    for arch in ARCHES {
        let name = format!("{arch}.tar");
        assert!(
            std::fs::read(got.join(&name)).expect("read")
                == std::fs::read(expected.join(&name)).expect("read"),
            "{name} differs from the export of the layout"
        );
    }
}
