//! The image options of the `oci` and `docker` exporters: recompression
//! (done by the host), docker media types, reproducible timestamps, and
//! the combinations `validate` refuses. Outputs are read back with skopeo.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Earlier than every time in the sample (2024-01-01), so all are clamped.
const EPOCH: u64 = 1_700_000_000;
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

/// `outport export INPUT --output SPEC` with `extra` arguments and
/// environment.
fn export_with(input: &Path, spec: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args: Vec<OsString> = vec!["export".into(), input.as_os_str().to_os_string()];
    args.extend(["--output".into(), spec.into()]);
    args.extend(extra.iter().map(OsString::from));
    let cache = tempdir();
    run_outport(args, |command| {
        command
            .arg("--cache-dir")
            .arg(cache.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .envs(env.iter().copied());
    })
}

/// The one image manifest of a single-platform layout, with its config.
fn manifest_and_config(files: &LayoutFiles) -> (Value, Value) {
    let manifest = files.blob_json(str_at(&files.root(), "digest"));
    let config = files.blob_json(str_at(&manifest["config"], "digest"));
    (manifest, config)
}

/// The uncompressed tar of a layer blob (gzip, zstd or plain).
fn layer_tar(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gunzip a layer");
    } else {
        out = bytes.to_vec();
    }
    out
}

fn sample_amd64(tmp: &Path) -> PathBuf {
    single_platform_sample(tmp, "input", "amd64", "latest")
}

#[test]
fn gzip_layers_forced_to_zstd() {
    let tmp = tempdir();
    let input = sample_amd64(tmp.path());
    let dest = tmp.path().join("out");
    let spec = format!(
        "type=oci,tar=false,dest={},compression=zstd,force-compression=true",
        path_str(&dest)
    );
    export_with(&input, &spec, &[], &[]).assert_success();

    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    let (manifest, config) = manifest_and_config(&files);
    let (_, input_config) = manifest_and_config(&LayoutFiles::from_dir(&input));
    // Recompression leaves the tars, hence the diff IDs, as they were.
    assert_eq!(config["rootfs"], input_config["rootfs"]);
    for layer in array_at(&manifest, "layers") {
        assert_eq!(str_at(layer, "mediaType"), MT_LAYER_ZSTD, "{manifest}");
        let bytes = files.blob(str_at(layer, "digest"));
        assert!(bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "not zstd");
        assert_eq!(sha256_digest(bytes), str_at(layer, "digest"));
    }
    // skopeo reads the layout and sees the zstd layers.
    let raw = skopeo_json(&["inspect", "--raw", &format!("oci:{}", path_str(&dest))]);
    let types: Vec<&str> = array_at(&raw, "layers")
        .iter()
        .map(|l| str_at(l, "mediaType"))
        .collect();
    assert!(types.iter().all(|t| *t == MT_LAYER_ZSTD), "{raw}");
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        &format!("oci:{}", path_str(&dest)),
        &format!("dir:{}", path_str(&copy)),
    ]);
    for layer in array_at(&manifest, "layers") {
        assert!(copy.join(digest_hex(str_at(layer, "digest"))).is_file());
    }
}

#[test]
fn compressed_layers_stay_unless_forced() {
    let tmp = tempdir();
    let input = sample_amd64(tmp.path());
    let dest = tmp.path().join("out");
    let spec = format!(
        "type=oci,tar=false,dest={},compression=zstd",
        path_str(&dest)
    );
    export_with(&input, &spec, &[], &[]).assert_success();
    let output = manifest_and_config(&LayoutFiles::from_dir(&dest));
    assert_eq!(output, manifest_and_config(&LayoutFiles::from_dir(&input)));
}

#[test]
fn uncompressed_docker_save_input_gets_gzip_layers() {
    let tmp = tempdir();
    let input = tmp.path().join("docker-save.tar");
    let saved = docker_save_tar("amd64", &input);
    let dest = tmp.path().join("image.tar");
    let spec = format!(
        "type=docker,dest={},compression=gzip,compression-level=9",
        path_str(&dest)
    );
    export_with(&input, &spec, &[], &[]).assert_success();

    let files = LayoutFiles::from_tar(&dest);
    files.verify();
    let (manifest, config) = manifest_and_config(&files);
    let layers = array_at(&manifest, "layers");
    assert_eq!(layers.len(), saved.diff_ids.len());
    for (layer, diff_id) in layers.iter().zip(&saved.diff_ids) {
        assert_eq!(str_at(layer, "mediaType"), MT_LAYER_GZIP);
        let bytes = files.blob(str_at(layer, "digest"));
        assert!(bytes.starts_with(&[0x1f, 0x8b]), "not gzip");
        assert_eq!(&sha256_digest(&layer_tar(bytes)), diff_id);
    }
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!(saved.diff_ids)
    );
    // docker's manifest.json names the new layers, and skopeo reads them.
    let docker_manifest = parse_json("manifest.json", files.get("manifest.json"));
    assert_eq!(array_at(&docker_manifest[0], "Layers").len(), layers.len());
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", path_str(&dest)),
        &format!("dir:{}", path_str(&copy)),
    ]);
}

#[test]
fn oci_mediatypes_false_gives_docker_media_types() {
    let tmp = tempdir();
    let input = sample_amd64(tmp.path());
    let layout = tmp.path().join("layout");
    let spec = format!(
        "type=oci,tar=false,dest={},oci-mediatypes=false",
        path_str(&layout)
    );
    export_with(&input, &spec, &[], &[]).assert_success();
    let raw = skopeo_json(&["inspect", "--raw", &format!("oci:{}", path_str(&layout))]);
    assert_eq!(str_at(&raw, "mediaType"), MT_DOCKER_MANIFEST, "{raw}");
    assert_eq!(str_at(&raw["config"], "mediaType"), MT_DOCKER_CONFIG);
    assert!(
        array_at(&raw, "layers")
            .iter()
            .all(|l| str_at(l, "mediaType") == MT_DOCKER_LAYER_GZIP),
        "{raw}"
    );
    assert!(raw.get("annotations").is_none(), "{raw}");

    let tarball = tmp.path().join("image.tar");
    let spec = format!(
        "type=docker,dest={},oci-mediatypes=false",
        path_str(&tarball)
    );
    export_with(&input, &spec, &[], &[]).assert_success();
    let files = LayoutFiles::from_tar(&tarball);
    files.verify();
    assert_eq!(str_at(&files.root(), "mediaType"), MT_DOCKER_MANIFEST);
    let info = skopeo_json(&["inspect", &format!("docker-archive:{}", path_str(&tarball))]);
    assert_eq!(str_at(&info, "Architecture"), "amd64", "{info}");
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", path_str(&tarball)),
        &format!("oci:{}", path_str(&copy)),
    ]);
}

#[test]
fn rewrite_timestamp_is_reproducible_and_clamps_every_time() {
    let tmp = tempdir();
    let epoch = EPOCH.to_string();
    let mut digests = Vec::new();
    for (i, (extra, env)) in [
        (vec!["--source-date-epoch", epoch.as_str()], vec![]),
        (vec![], vec![("SOURCE_DATE_EPOCH", epoch.as_str())]),
    ]
    .into_iter()
    .enumerate()
    {
        let dest = tmp.path().join(format!("image{i}.tar"));
        let spec = format!("type=oci,dest={},rewrite-timestamp=true", path_str(&dest));
        export_with(&sample_image(), &spec, &extra, &env).assert_success();
        let files = LayoutFiles::from_tar(&dest);
        files.verify();
        digests.push(str_at(&files.root(), "digest").to_owned());
        for arch in ["amd64", "arm64"] {
            let manifest = files.manifest(arch);
            let config = files.blob_json(str_at(&manifest["config"], "digest"));
            assert_eq!(str_at(&config, "created"), EPOCH_RFC3339);
            for entry in array_at(&config, "history") {
                assert_eq!(str_at(entry, "created"), EPOCH_RFC3339, "{config}");
            }
            let diff_ids = array_at(&config["rootfs"], "diff_ids");
            for (layer, diff_id) in array_at(&manifest, "layers").iter().zip(diff_ids) {
                assert_eq!(str_at(layer, "mediaType"), MT_LAYER_GZIP);
                let tar = layer_tar(files.blob(str_at(layer, "digest")));
                assert_eq!(diff_id.as_str(), Some(sha256_digest(&tar).as_str()));
                let mut archive = tar::Archive::new(tar.as_slice());
                for entry in archive.entries().expect("read a layer") {
                    let entry = entry.expect("a layer entry");
                    let mtime = entry.header().mtime().expect("an mtime");
                    assert!(mtime <= EPOCH, "{:?}: {mtime}", entry.path());
                }
            }
        }
    }
    assert_eq!(digests[0], digests[1]);
    let input = LayoutFiles::from_dir(&sample_image());
    assert_ne!(digests[0], str_at(&input.root(), "digest"));
}

#[test]
fn rewrite_timestamp_without_an_epoch_fails() {
    let tmp = tempdir();
    let dest = mkdir(tmp.path(), "out").join("image.tar");
    let spec = format!("type=oci,dest={},rewrite-timestamp=true", path_str(&dest));
    let run = export_with(&sample_image(), &spec, &[], &[]);
    run.assert_code(1);
    run.assert_error(&["rewrite-timestamp"], &["source date epoch"]);
    assert!(
        run.error_text().contains("oci exporter"),
        "{}",
        run.describe()
    );
    assert_empty_or_absent(dest.parent().unwrap());

    let run = export_with(
        &sample_image(),
        &spec,
        &["--source-date-epoch", "yesterday"],
        &[],
    );
    run.assert_code(2);
    run.assert_error(&["yesterday"], &["expected a number"]);
    assert_empty_or_absent(dest.parent().unwrap());
}

#[test]
fn bad_values_and_conflicts_are_refused_naming_the_option() {
    for (options, option, words) in [
        ("compression=brotli", "compression", "expected uncompressed"),
        (
            "compression=gzip,compression-level=10",
            "compression-level",
            "out of range",
        ),
        (
            "compression=zstd,compression-level=0",
            "compression-level",
            "out of range",
        ),
        (
            "compression=zstd,compression-level=fast",
            "compression-level",
            "not a number",
        ),
        (
            "compression-level=3",
            "compression-level",
            "needs compression",
        ),
        (
            "compression=uncompressed,compression-level=3",
            "compression-level",
            "does not apply",
        ),
        (
            "force-compression=true",
            "force-compression",
            "needs compression",
        ),
        (
            "compression=zstd,oci-mediatypes=false",
            "oci-mediatypes=false",
            "no zstd",
        ),
        (
            "oci-mediatypes=false,annotation.a=b",
            "annotation.a",
            "no annotations",
        ),
        (
            "oci-mediatypes=maybe",
            "oci-mediatypes",
            "expected true or false",
        ),
    ] {
        for exporter in ["oci", "docker"] {
            let tmp = tempdir();
            let dest = mkdir(tmp.path(), "out").join("image.tar");
            let spec = format!("type={exporter},dest={},{options}", path_str(&dest));
            let run = export_with(&sample_image(), &spec, &[], &[]);
            assert!(
                matches!(run.code, Some(1 | 2)),
                "{spec}: expected exit code 1 or 2\n{}",
                run.describe()
            );
            run.assert_error(&[option], &[words]);
            let error = run.error_text();
            assert!(
                error.contains(&format!("{exporter} exporter")),
                "the error should name the {exporter} exporter\n{}",
                run.describe()
            );
            assert_empty_or_absent(dest.parent().unwrap());
        }
    }
}
