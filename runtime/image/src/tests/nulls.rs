//! What Go programs (Docker, containerd, BuildKit) write for an empty list:
//! `null` or nothing. Docker 25+ saving an untagged image writes
//! `"manifests": null` in `index.json` and `"RepoTags": null` in
//! `manifest.json` (moby's `image/tarexport/save.go`): such a save is read
//! through `manifest.json`.

use std::fs;

use serde_json::json;

use super::err;
use crate::testutil::*;
use crate::{open, open_file};

/// A Docker 25+ save of an untagged image, byte for byte in the shape
/// dockerd writes: the OCI manifest blob is there but index.json lists
/// nothing, and manifest.json (encoded with a trailing newline) has no tags.
fn untagged_docker25_save(f: &Fixture, img: &Img) -> String {
    fs::write(
        f.dir.join("index.json"),
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}"#,
    )
    .unwrap();
    let manifest = format!(
        "[{{\"Config\":\"blobs/sha256/{}\",\"RepoTags\":null,\"Layers\":[\"blobs/sha256/{}\"]}}]\n",
        img.config.hex(),
        img.layer.hex()
    );
    fs::write(f.dir.join("manifest.json"), manifest).unwrap();
    let out = f.out("untagged.tar");
    f.pack(&out);
    out
}

#[test]
fn docker25_untagged_save_reads_manifest_json() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"untagged");
    let out = untagged_docker25_save(&f, &img);
    for image in [
        open(&out).unwrap(),
        open_file(fs::File::open(&out).unwrap(), "-", None).unwrap(),
    ] {
        // The synthesised manifest: same config and layer, no name.
        let root = image.root();
        assert!(root.annotations().is_none());
        let manifest = image.blob(root.digest().as_ref()).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&manifest.read_all(1 << 20).unwrap()).unwrap();
        assert_eq!(manifest["config"]["digest"], img.config.digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], img.layer.digest.as_str());
        assert_eq!(image.blobs().count(), 3);
    }
    // The config digest (the docker image ID) selects it too.
    let by_id = open(&format!("{out}:{}", img.config.digest)).unwrap();
    assert_eq!(by_id.blobs().count(), 3);
}

#[test]
fn layout_listing_nothing_is_not_an_image() {
    let f = Fixture::new();
    for manifests in [json!(null), json!([])] {
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(f.dir.join("index.json"), index.to_string()).unwrap();
        assert_eq!(
            err(&f.path()).to_string(),
            format!(
                "{}/index.json: not an image: index.json lists no images",
                f.path()
            )
        );
    }
}

#[test]
fn null_layers_and_diff_ids_are_an_image_without_layers() {
    let f = Fixture::new();
    let config = f.add_blob(
        json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": null}})
            .to_string()
            .as_bytes(),
    );
    let manifest = f.add_blob(
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": config.descriptor(OCI_CONFIG), "layers": null})
        .to_string()
        .as_bytes(),
    );
    let entry = manifest.descriptor(OCI_MANIFEST);
    fs::write(
        f.dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [entry]}).to_string(),
    )
    .unwrap();
    let image = open(&f.path()).unwrap();
    assert_eq!(image.root().digest().to_string(), manifest.digest);
    assert_eq!(image.blobs().count(), 2);
}

#[test]
fn docker_save_without_diff_ids_is_checked() {
    let f = Fixture::new();
    let img = f.add_image("amd64", b"x");
    let config = f.add_blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#);
    let manifest = format!(
        "[{{\"Config\":\"blobs/sha256/{}\",\"RepoTags\":null,\"Layers\":[\"blobs/sha256/{}\"]}}]",
        config.hex(),
        img.layer.hex()
    );
    fs::write(f.dir.join("manifest.json"), manifest).unwrap();
    fs::remove_file(f.dir.join("oci-layout")).unwrap();
    assert_eq!(
        err(&f.path()).to_string(),
        format!(
            "{}/manifest.json: image blobs/sha256/{hex} has 1 layers but its config blobs/sha256/{hex} lists 0 diff_ids",
            f.path(),
            hex = config.hex()
        )
    );
}
