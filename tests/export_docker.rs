//! The `docker` exporter end to end: a `docker load` tarball of one platform
//! of the sample, checked with skopeo (`docker-archive:`), as an OCI layout,
//! and read back by outport itself as a docker-save input.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// `docker-archive:PATH[:REF]`, as skopeo names a docker tarball.
fn docker_archive(path: &Path, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("docker-archive:{}:{r}", path_str(path)),
        None => format!("docker-archive:{}", path_str(path)),
    }
}

/// The sample's image manifest for `arch`: (manifest digest, config digest,
/// layer digests).
fn sample_image_of(arch: &str) -> (String, String, Vec<String>) {
    let sample = LayoutFiles::from_dir(&sample_image());
    let digest = str_at(&sample.manifest_descriptor(arch), "digest").to_owned();
    let manifest = sample.manifest(arch);
    let config = str_at(&manifest["config"], "digest").to_owned();
    let layers = array_at(&manifest, "layers")
        .iter()
        .map(|l| str_at(l, "digest").to_owned())
        .collect();
    (digest, config, layers)
}

/// `blobs/sha256/<hex>` of a digest.
fn blob_file(digest: &str) -> String {
    format!("blobs/sha256/{}", digest_hex(digest))
}

/// Exports `input` with one docker output (`docker_options` after the
/// destination) and a metadata file; returns the run, the tarball's path and
/// the metadata file's path.
fn export_docker(tmp: &Path, input: &Path, docker_options: &str) -> (Run, PathBuf, PathBuf) {
    let out = mkdir(tmp, "out");
    let dest = out.join("image.tar");
    let metadata = tmp.join("metadata.json");
    let mut spec = format!("type=docker,dest={}", path_str(&dest));
    if !docker_options.is_empty() {
        spec.push(',');
        spec.push_str(docker_options);
    }
    let run = export(input.as_os_str(), &[spec], Some(&metadata));
    (run, dest, metadata)
}

/// Asserts the tarball is a complete OCI layout plus docker's
/// `manifest.json` for the image `(manifest, config, layers)` tagged
/// `repo_tags`; returns its files.
#[track_caller]
fn assert_docker_tar(
    dest: &Path,
    (manifest, config, layers): &(String, String, Vec<String>),
    repo_tags: &[&str],
) -> LayoutFiles {
    let files = LayoutFiles::from_tar(dest);
    files.verify();
    let layer_files: Vec<String> = layers.iter().map(|l| blob_file(l)).collect();
    assert_eq!(
        parse_json("manifest.json", files.get("manifest.json")),
        json!([{ "Config": blob_file(config), "RepoTags": repo_tags, "Layers": layer_files }]),
    );
    let index = files.index_json();
    for entry in array_at(&index, "manifests") {
        assert_eq!(entry["digest"], manifest.as_str(), "{index}");
        assert_eq!(entry["mediaType"], MT_MANIFEST, "{index}");
    }
    // Exactly the image's blobs: manifest, config, layers.
    let mut expected: Vec<String> = vec![manifest.clone(), config.clone()];
    expected.extend(layers.iter().cloned());
    expected.sort();
    assert_eq!(
        files.blob_digests().into_iter().collect::<Vec<_>>(),
        expected
    );
    files
}

/// The response of instance `id` in a metadata file.
fn response_of(metadata: &Path, id: &str) -> Value {
    let metadata = read_json(metadata);
    let entry = exporter_entry(&metadata, id);
    assert_eq!(entry["status"], "ok", "{entry}");
    entry["response"].clone()
}

#[test]
fn arm64_image_of_the_sample_inspects_with_skopeo() {
    let tmp = tempdir();
    let (run, dest, metadata) = export_docker(
        tmp.path(),
        &sample_image(),
        "platform=linux/arm64,name=outport/sample:1.0",
    );
    run.assert_success();
    assert_eq!(dir_names(dest.parent().unwrap()), ["image.tar"]);
    let arm64 = sample_image_of("arm64");
    let (manifest, config, layers) = &arm64;
    let files = assert_docker_tar(&dest, &arm64, &["outport/sample:1.0"]);
    assert_eq!(
        parse_json("repositories", files.get("repositories")),
        json!({ "outport/sample": { "1.0": digest_hex(config) } })
    );
    let root = files.root();
    assert_eq!(
        root["annotations"],
        json!({ ANN_IMAGE_NAME: "docker.io/outport/sample:1.0", ANN_REF_NAME: "1.0" }),
        "{root}"
    );

    // skopeo reads it as a docker archive, also by its tag. It names the
    // layers of a docker archive by their diff IDs (the config's).
    let image = skopeo_json(&["inspect", &docker_archive(&dest, None)]);
    assert_eq!(image["Architecture"], "arm64", "{image}");
    assert_eq!(image["Os"], "linux", "{image}");
    let sample = LayoutFiles::from_dir(&sample_image());
    assert_eq!(
        image["Layers"],
        sample.blob_json(config)["rootfs"]["diff_ids"],
        "{image}"
    );
    let raw = skopeo_json(&[
        "inspect",
        "--raw",
        &docker_archive(&dest, Some("outport/sample:1.0")),
    ]);
    assert_eq!(raw["config"]["digest"], config.as_str(), "{raw}");
    let config_json = skopeo(&["inspect", "--config", "--raw", &docker_archive(&dest, None)]);
    assert_eq!(sha256_digest(config_json.as_bytes()), *config);

    // skopeo copies it into an OCI layout. (It reads the layers
    // uncompressed, recompresses them and re-serializes the config, so
    // digests change; the image does not.)
    let copy = tmp.path().join("copy");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &docker_archive(&dest, None),
        &oci_dir_ref(&copy, "copied"),
    ]);
    let copied = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&copy, "copied")]);
    assert_eq!(array_at(&copied, "layers").len(), layers.len(), "{copied}");
    let copied = skopeo_json(&["inspect", "--config", &oci_dir_ref(&copy, "copied")]);
    let original = sample.blob_json(config);
    assert_eq!(copied["rootfs"], original["rootfs"], "{copied}");
    assert_eq!(copied["architecture"], "arm64", "{copied}");
    assert_eq!(copied["config"], original["config"], "{copied}");

    assert_metadata_valid(&metadata);
    let response = response_of(&metadata, "0");
    assert_eq!(response["containerimage.digest"], manifest.as_str());
    assert_eq!(response["containerimage.config.digest"], config.as_str());
    assert_eq!(
        response["containerimage.descriptor"]["digest"],
        manifest.as_str()
    );
    assert_eq!(response["image.name"], "docker.io/outport/sample:1.0");
}

#[test]
fn several_names() {
    let tmp = tempdir();
    let (run, dest, metadata) = export_docker(
        tmp.path(),
        &sample_image(),
        "platform=linux/amd64,name=app:1,name=example.com/team/app:2,\
         name=docker.io/library/other",
    );
    run.assert_success();
    let amd64 = sample_image_of("amd64");
    let files = assert_docker_tar(
        &dest,
        &amd64,
        &["app:1", "example.com/team/app:2", "other:latest"],
    );
    let config_hex = digest_hex(&amd64.1);
    assert_eq!(
        parse_json("repositories", files.get("repositories")),
        json!({
            "app": { "1": config_hex },
            "example.com/team/app": { "2": config_hex },
            "other": { "latest": config_hex },
        })
    );
    let index = files.index_json();
    let names: Vec<&str> = array_at(&index, "manifests")
        .iter()
        .map(|e| str_at(&e["annotations"], ANN_IMAGE_NAME))
        .collect();
    assert_eq!(
        names,
        [
            "docker.io/library/app:1",
            "example.com/team/app:2",
            "docker.io/library/other:latest"
        ]
    );
    for tag in ["app:1", "example.com/team/app:2", "other:latest"] {
        let image = skopeo_json(&["inspect", &docker_archive(&dest, Some(tag))]);
        assert_eq!(image["Architecture"], "amd64", "{tag}: {image}");
    }
    assert_eq!(
        response_of(&metadata, "0")["image.name"],
        "docker.io/library/app:1,example.com/team/app:2,docker.io/library/other:latest"
    );
}

#[test]
fn platform_the_image_lacks_fails_listing_its_platforms() {
    let tmp = tempdir();
    let (run, dest, _) = export_docker(tmp.path(), &sample_image(), "platform=linux/s390x");
    run.assert_code(1);
    run.assert_error(&["platform"], &["linux/s390x"]);
    let error = run.error_text();
    assert!(
        error.contains("linux/amd64, linux/arm64/v8"),
        "the error should list the image's platforms\n{}",
        run.describe()
    );
    assert_empty_or_absent(dest.parent().unwrap());
}

#[test]
fn bad_platform_and_unknown_option_are_rejected() {
    for (options, mentions) in [
        ("platform=linux", "platform"),
        ("tar=false", "unknown option \"tar\""),
        (
            "platform=linux/amd64,platform=linux/arm64",
            "more than once",
        ),
    ] {
        let tmp = tempdir();
        let (run, dest, _) = export_docker(tmp.path(), &sample_image(), options);
        assert!(
            matches!(run.code, Some(1 | 2)),
            "{options}: expected exit code 1 or 2\n{}",
            run.describe()
        );
        run.assert_error(&["docker", mentions], &[mentions]);
        assert_empty_or_absent(dest.parent().unwrap());
    }
}

#[test]
fn default_platform() {
    // Several platforms, linux/amd64 among them: that one.
    let tmp = tempdir();
    let (run, dest, _) = export_docker(tmp.path(), &sample_image(), "");
    run.assert_success();
    assert_docker_tar(&dest, &sample_image_of("amd64"), &[]);
    assert!(
        !LayoutFiles::from_tar(&dest)
            .files
            .contains_key("repositories"),
        "no repositories without a tagged name"
    );

    // One platform: that one, whatever it is.
    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "arm64", "arm64");
    let (run, dest, _) = export_docker(tmp.path(), &input, "name=x");
    run.assert_success();
    assert_docker_tar(&dest, &sample_image_of("arm64"), &["x:latest"]);
}

#[test]
fn docker_and_oci_outputs_in_one_run() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let docker = out.join("docker.tar");
    let oci = out.join("oci.tar");
    let metadata = tmp.path().join("metadata.json");
    let run = export(
        sample_image().as_os_str(),
        &[
            format!(
                "type=docker,id=docker,dest={},platform=linux/arm64/v8,name=s:1",
                path_str(&docker)
            ),
            format!("type=oci,id=oci,dest={},name=s:1", path_str(&oci)),
        ],
        Some(&metadata),
    );
    run.assert_success();
    assert_docker_tar(&docker, &sample_image_of("arm64"), &["s:1"]);
    let image = skopeo_json(&["inspect", &docker_archive(&docker, Some("s:1"))]);
    assert_eq!(image["Architecture"], "arm64", "{image}");
    LayoutFiles::from_tar(&oci).verify();
    let raw = skopeo_json(&["inspect", "--raw", &oci_archive(&oci)]);
    assert_eq!(index_platforms(&raw), sample_platforms());

    assert_metadata_valid(&metadata);
    let root = LayoutFiles::from_dir(&sample_image()).root();
    assert_eq!(
        response_of(&metadata, "oci")["containerimage.digest"],
        root["digest"]
    );
    assert_eq!(
        response_of(&metadata, "docker")["containerimage.digest"],
        sample_image_of("arm64").0.as_str()
    );
}

/// Copies the tar at `from` to `to` without the entries named in `drop`.
fn tar_without(from: &Path, to: &Path, drop: &[&str]) {
    let bytes = fs::read(from).expect("read the tarball");
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut builder = tar::Builder::new(fs::File::create(to).expect("create the tarball"));
    for entry in archive.entries().expect("read the tar") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        if drop.contains(&path.as_str()) {
            continue;
        }
        let mut header = entry.header().clone();
        builder
            .append_data(&mut header, &path, &mut entry)
            .expect("copy a tar entry");
    }
    builder.finish().expect("finish the tar");
}

#[test]
fn outport_reads_its_docker_tarball_back() {
    let tmp = tempdir();
    let (run, dest, _) =
        export_docker(tmp.path(), &sample_image(), "platform=linux/arm64,name=s:2");
    run.assert_success();
    let (manifest, config, _) = sample_image_of("arm64");

    // As written (an OCI layout with manifest.json), and as a legacy
    // docker save (manifest.json and repositories only).
    let legacy = tmp.path().join("legacy.tar");
    tar_without(&dest, &legacy, &["index.json", "oci-layout"]);
    for (input, label) in [(&dest, "docker tarball"), (&legacy, "legacy docker save")] {
        let again = tmp
            .path()
            .join(format!("again-{}.tar", label.replace(' ', "-")));
        let metadata = tmp.path().join("again.json");
        let run = export(
            input.as_os_str(),
            &[format!("type=oci,dest={}", path_str(&again))],
            Some(&metadata),
        );
        run.assert_success();
        let response = response_of(&metadata, "0");
        assert_eq!(
            response["containerimage.config.digest"],
            config.as_str(),
            "{label}: {response}"
        );
        if input == &dest {
            assert_eq!(
                response["containerimage.digest"],
                manifest.as_str(),
                "{label}"
            );
        }
        LayoutFiles::from_tar(&again).verify();
        skopeo(&["inspect", &oci_archive(&again)]);
    }
}
