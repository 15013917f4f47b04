//! The `oci` exporter end to end: export the sample image (and variants of
//! it) and check the outputs with skopeo and umoci.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use crate::common::*;

mod runs;

/// The root descriptor of the checked-in sample (its `index.json` entry).
fn sample_root() -> Value {
    LayoutFiles::from_dir(&sample_image()).root()
}

/// Asserts `stdout` says where the output went.
#[track_caller]
fn assert_stdout_names(run: &Run, dest: &Path) {
    assert!(
        run.stdout_text().contains(path_str(dest)),
        "stdout should name the destination {}\n{}",
        dest.display(),
        run.describe()
    );
}

#[test]
fn tarball_of_the_multi_platform_sample() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let dest = out.join("sample.tar");

    let run = export(
        sample_image().as_os_str(),
        &[format!("type=oci,dest={}", path_str(&dest))],
        None,
    );
    run.assert_success();
    assert_stdout_names(&run, &dest);
    // Only the output: no temporary file or directory left beside it.
    assert_eq!(dir_names(&out), ["sample.tar"]);

    let files = LayoutFiles::from_tar(&dest);
    files.verify();

    let raw = skopeo_json(&["inspect", "--raw", &oci_archive(&dest)]);
    assert_eq!(raw["mediaType"], MT_INDEX, "{raw}");
    assert_eq!(array_at(&raw, "manifests").len(), 2, "{raw}");
    assert_eq!(index_platforms(&raw), sample_platforms());

    for arch in ["amd64", "arm64"] {
        let image = skopeo_json(&["inspect", "--override-arch", arch, &oci_archive(&dest)]);
        assert_eq!(image["Architecture"], arch, "{image}");
        assert_eq!(image["Os"], "linux", "{image}");
        assert_eq!(array_at(&image, "Layers").len(), 2, "{image}");
        assert_eq!(
            image["Labels"]["org.opencontainers.image.title"], "outport sample",
            "{image}"
        );
    }

    let copy = tmp.path().join("copy");
    skopeo_copy_all(&oci_archive(&dest), &oci_dir_ref(&copy, "copied"));
    let copied = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&copy, "copied")]);
    assert_eq!(index_platforms(&copied), sample_platforms());
}

#[test]
fn layout_directory_with_tar_false() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let dest = out.join("layout");

    let run = export(
        sample_image().as_os_str(),
        &[format!("type=oci,tar=false,dest={}", path_str(&dest))],
        None,
    );
    run.assert_success();
    assert_stdout_names(&run, &dest);
    assert_eq!(dir_names(&out), ["layout"]);
    assert!(
        dest.join("oci-layout").is_file(),
        "no oci-layout in {}",
        dest.display()
    );
    assert!(
        dest.join("index.json").is_file(),
        "no index.json in {}",
        dest.display()
    );
    LayoutFiles::from_dir(&dest).verify();

    let image = skopeo_json(&["inspect", "--override-arch", "amd64", &oci_dir(&dest)]);
    assert_eq!(image["Architecture"], "amd64", "{image}");
    assert_eq!(array_at(&image, "Layers").len(), 2, "{image}");
    let raw = skopeo_json(&["inspect", "--raw", &oci_dir(&dest)]);
    assert_eq!(index_platforms(&raw), sample_platforms());
    skopeo_copy_all(
        &oci_dir(&dest),
        &oci_dir_ref(&tmp.path().join("copy"), "copied"),
    );
}

#[test]
fn output_holds_the_input_unchanged() {
    // Without annotations nothing is rewritten: the same root digest and
    // exactly the input's blobs, byte for byte.
    let tmp = tempdir();
    let dest = tmp.path().join("layout");
    let run = export(
        sample_image().as_os_str(),
        &[format!("type=oci,tar=false,dest={}", path_str(&dest))],
        None,
    );
    run.assert_success();

    let input = LayoutFiles::from_dir(&sample_image());
    let output = LayoutFiles::from_dir(&dest);
    output.verify();
    let root = output.root();
    assert_eq!(
        root["digest"],
        sample_root()["digest"],
        "root descriptor: {root}"
    );
    assert_eq!(root["mediaType"], MT_INDEX, "root descriptor: {root}");
    assert_eq!(output.blob_digests(), input.blob_digests());
    for digest in input.blob_digests() {
        assert!(
            input.blob(&digest) == output.blob(&digest),
            "blob {digest} differs"
        );
    }
}

/// `umoci unpack` of tag `v1` of the layout `dest` into `bundle` is the
/// amd64 sample's root filesystem: whiteouts applied, modes, hard links and
/// symlinks kept.
fn assert_umoci_unpacks_the_sample(dest: &Path, bundle: &Path) {
    let image = format!("{}:v1", path_str(dest));
    umoci(&["unpack", "--rootless", "--image", &image, path_str(bundle)]);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("app/platform.txt")).expect("read app/platform.txt"),
        "linux/amd64\n"
    );
    // The per-platform layer's whiteout deleted the base layer's README.
    assert!(
        fs::symlink_metadata(rootfs.join("usr/share/sample/README")).is_err(),
        "the whiteout .wh.README should have removed usr/share/sample/README"
    );
    assert!(rootfs.join("usr/share/sample/NOTES").is_file());
    assert!(rootfs.join("var/empty").is_dir());
    let hello = fs::metadata(rootfs.join("app/hello")).expect("stat app/hello");
    assert_ne!(
        hello.permissions().mode() & 0o111,
        0,
        "app/hello is not executable"
    );
    let hi = fs::metadata(rootfs.join("app/hi")).expect("stat app/hi");
    assert_eq!(
        hi.ino(),
        hello.ino(),
        "app/hi should be a hard link to app/hello"
    );
    assert_eq!(
        fs::read_link(rootfs.join("etc/sample-release")).expect("read the symlink"),
        Path::new("os-release")
    );
}

/// The metadata file of a single-platform export: valid, and its response
/// names the manifest, the config and the image.
fn assert_single_platform_response(metadata: &Path, manifest_digest: &str, config_digest: &str) {
    assert_metadata_valid(metadata);
    let metadata = read_json(metadata);
    let entry = exporter_entry(&metadata, "0");
    assert_eq!(entry["status"], "ok", "{entry}");
    assert_eq!(entry["type"], "oci", "{entry}");
    let response = &entry["response"];
    assert_eq!(
        response["containerimage.digest"], manifest_digest,
        "{entry}"
    );
    assert_eq!(
        response["containerimage.config.digest"], config_digest,
        "{entry}"
    );
    assert_eq!(
        response["image.name"], "docker.io/library/sample:v1",
        "{entry}"
    );
    assert_eq!(
        response["containerimage.descriptor"]["digest"], manifest_digest,
        "{entry}"
    );
}

#[test]
fn single_platform_image_unpacks_with_umoci() {
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "amd64", "amd64");
    let sample = LayoutFiles::from_dir(&sample_image());
    let manifest_digest = str_at(&sample.manifest_descriptor("amd64"), "digest").to_owned();
    let config_digest = str_at(&sample.manifest("amd64")["config"], "digest").to_owned();
    let out = mkdir(tmp.path(), "out");
    let dest = out.join("image");
    let metadata = tmp.path().join("metadata.json");

    let run = export(
        input.as_os_str(),
        &[format!(
            "type=oci,tar=false,dest={},name=docker.io/library/sample:v1",
            path_str(&dest)
        )],
        Some(&metadata),
    );
    run.assert_success();

    // index.json names the image the way BuildKit does.
    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    let root = files.root();
    assert_eq!(root["digest"], manifest_digest.as_str(), "{root}");
    assert_eq!(root["mediaType"], MT_MANIFEST, "{root}");
    assert_eq!(root["annotations"][ANN_REF_NAME], "v1", "{root}");
    assert_eq!(
        root["annotations"][ANN_IMAGE_NAME], "docker.io/library/sample:v1",
        "{root}"
    );

    assert_umoci_unpacks_the_sample(&dest, &tmp.path().join("bundle"));
    assert_single_platform_response(&metadata, &manifest_digest, &config_digest);
}

#[test]
fn two_outputs_at_once_and_the_metadata_file() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let tarball = out.join("sample-oci.tar");
    let layout = out.join("sample-layout");
    let metadata = tmp.path().join("metadata.json");

    let run = export(
        sample_image().as_os_str(),
        &[
            format!("type=oci,dest={},id=tarball", path_str(&tarball)),
            format!("type=oci,tar=false,dest={},id=layout", path_str(&layout)),
        ],
        Some(&metadata),
    );
    run.assert_success();
    assert_stdout_names(&run, &tarball);
    assert_stdout_names(&run, &layout);
    assert_eq!(dir_names(&out), ["sample-layout", "sample-oci.tar"]);

    let raw = skopeo_json(&["inspect", "--raw", &oci_archive(&tarball)]);
    assert_eq!(index_platforms(&raw), sample_platforms());
    let raw = skopeo_json(&["inspect", "--raw", &oci_dir(&layout)]);
    assert_eq!(index_platforms(&raw), sample_platforms());

    assert_metadata_valid(&metadata);
    let metadata = read_json(&metadata);
    let ids: Vec<&str> = array_at(&metadata, "exporters")
        .iter()
        .map(|entry| str_at(entry, "id"))
        .collect();
    assert_eq!(ids, ["tarball", "layout"], "{metadata:#}");

    let outputs = [
        ("tarball", LayoutFiles::from_tar(&tarball)),
        ("layout", LayoutFiles::from_dir(&layout)),
    ];
    for (id, files) in &outputs {
        files.verify();
        let root = files.root();
        let digest = str_at(&root, "digest");
        // The digest is the sha256 of the root index in the output.
        assert_eq!(sha256_digest(files.blob(digest)), digest);
        assert_eq!(root["mediaType"], MT_INDEX, "{root}");

        let entry = exporter_entry(&metadata, id);
        assert_eq!(entry["type"], "oci", "{entry}");
        assert_eq!(entry["status"], "ok", "{entry}");
        let response = &entry["response"];
        assert_eq!(response["containerimage.digest"], digest, "{entry}");
        let descriptor = &response["containerimage.descriptor"];
        assert!(
            descriptor.is_object(),
            "containerimage.descriptor should be decoded JSON: {entry}"
        );
        assert_eq!(descriptor["digest"], digest, "{entry}");
        assert_eq!(descriptor["mediaType"], MT_INDEX, "{entry}");
        assert_eq!(descriptor["size"], root["size"], "{entry}");
        assert!(
            response.get("containerimage.config.digest").is_none(),
            "containerimage.config.digest is for single-platform images only: {entry}"
        );
    }
    // Both outputs hold the same image; the legacy flat keys come from the
    // first instance.
    let digest = outputs[0].1.root()["digest"].clone();
    assert_eq!(outputs[1].1.root()["digest"], digest);
    assert_eq!(metadata["containerimage.digest"], digest, "{metadata:#}");
    assert_eq!(
        metadata["containerimage.descriptor"]["digest"], digest,
        "{metadata:#}"
    );
}

#[test]
fn name_twice_gives_two_index_entries() {
    let tmp = tempdir();
    let dest = tmp.path().join("layout");
    let metadata = tmp.path().join("metadata.json");
    let run = export(
        sample_image().as_os_str(),
        &[format!(
            "type=oci,tar=false,dest={},name=example.com/a/b:1.0,name=example.com/a/b:latest",
            path_str(&dest)
        )],
        Some(&metadata),
    );
    run.assert_success();

    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    let index = files.index_json();
    let entries = array_at(&index, "manifests");
    assert_eq!(entries.len(), 2, "{index}");
    let root_digest = sample_root()["digest"].clone();
    for (tag, name) in [
        ("1.0", "example.com/a/b:1.0"),
        ("latest", "example.com/a/b:latest"),
    ] {
        let entry = entries
            .iter()
            .find(|entry| entry["annotations"][ANN_IMAGE_NAME] == name)
            .unwrap_or_else(|| panic!("no index.json entry for {name}: {index}"));
        assert_eq!(entry["annotations"][ANN_REF_NAME], tag, "{index}");
        assert_eq!(entry["digest"], root_digest, "{index}");
        // skopeo finds the image by either tag.
        let raw = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&dest, tag)]);
        assert_eq!(index_platforms(&raw), sample_platforms());
    }

    let metadata = read_json(&metadata);
    assert_eq!(
        exporter_entry(&metadata, "0")["response"]["image.name"],
        "example.com/a/b:1.0,example.com/a/b:latest",
        "{metadata:#}"
    );
}

#[test]
fn annotations_go_into_every_image_manifest() {
    let tmp = tempdir();
    let dest = tmp.path().join("layout");
    // The second annotation's value holds a comma, so its field is quoted.
    let run = export(
        sample_image().as_os_str(),
        &[format!(
            "type=oci,tar=false,dest={},annotation.org.example=1,\"annotation.org.example.note=a, b\"",
            path_str(&dest)
        )],
        None,
    );
    run.assert_success();

    let input = LayoutFiles::from_dir(&sample_image());
    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    let root = files.root();
    assert_ne!(
        root["digest"],
        sample_root()["digest"],
        "new manifests make a new index"
    );
    let raw = skopeo_json(&["inspect", "--raw", &oci_dir(&dest)]);
    assert_eq!(index_platforms(&raw), sample_platforms());
    for arch in ["amd64", "arm64"] {
        let desc = files.manifest_descriptor(arch);
        // skopeo sees the same index, so this manifest is the one it serves.
        assert!(
            array_at(&raw, "manifests")
                .iter()
                .any(|d| d["digest"] == desc["digest"]),
            "skopeo's index lacks {desc}"
        );
        let manifest = files.manifest(arch);
        assert_eq!(manifest["annotations"]["org.example"], "1", "{manifest}");
        assert_eq!(
            manifest["annotations"]["org.example.note"], "a, b",
            "{manifest}"
        );
        // Only the manifest changed: same config and layers.
        let original = input.manifest(arch);
        assert_eq!(manifest["config"], original["config"], "{manifest}");
        assert_eq!(manifest["layers"], original["layers"], "{manifest}");
    }
    skopeo_copy_all(
        &oci_dir(&dest),
        &oci_dir_ref(&tmp.path().join("copy"), "copied"),
    );
}
