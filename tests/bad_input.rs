//! Bad inputs and bad options: outport exits non-zero, says on stderr what
//! is wrong and where (`error: ...` naming the file, blob or option), and
//! writes nothing at any destination.

use std::ffi::OsStr;
use std::fs;

use serde_json::json;

use crate::common::*;

/// Words that say a file ended too early.
const TRUNCATED: &[&str] = &[
    "truncated",
    "unexpected end",
    "end of file",
    "eof",
    "short",
    "incomplete",
    "size",
    "mismatch",
];
/// Words that say a blob's content does not match its digest.
const DIGEST_MISMATCH: &[&str] = &[
    "mismatch",
    "does not match",
    "doesn't match",
    "differ",
    "expected",
    "verif",
    "corrupt",
];
/// Words that say a blob is absent.
const MISSING: &[&str] = &[
    "missing",
    "not found",
    "no such file",
    "does not exist",
    "doesn't exist",
    "absent",
];
/// Words that say a media type is not supported.
const MEDIA_TYPE: &[&str] = &[
    "media type",
    "mediatype",
    "media-type",
    "unsupported",
    "not supported",
    "unknown",
];
/// Words that say a JSON document is malformed.
const BAD_JSON: &[&str] = &[
    "json",
    "parse",
    "invalid",
    "malformed",
    "eof",
    "expected",
    "syntax",
];
/// Words that say a path holds no image in a format outport reads.
const NOT_AN_IMAGE: &[&str] = &[
    "not an image",
    "not an oci",
    "no image",
    "image",
    "layout",
    "index.json",
    "oci-layout",
    "manifest.json",
    "tar",
    "format",
    "recogni",
];

/// Exports `input` to a tarball and to a layout directory inside a fresh
/// `out/` directory and asserts: exit code 1, an `error:` naming one of
/// `mentions` and saying one of `words`, and `out/` still empty.
#[track_caller]
fn assert_bad_input(input: &OsStr, mentions: &[&str], words: &[&str]) -> Run {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let run = export(
        input,
        &[
            format!("type=oci,dest={}", path_str(&out.join("image.tar"))),
            format!("type=oci,tar=false,dest={}", path_str(&out.join("layout"))),
        ],
        None,
    );
    run.assert_code(1);
    run.assert_error(mentions, words);
    assert_empty_or_absent(&out);
    run
}

#[test]
fn truncated_archive() {
    let tmp = tempdir();
    let sample = LayoutFiles::from_dir(&sample_image());
    // The amd64-only layer, packed last and cut in the middle, so index.json
    // and the manifests are still readable.
    let layer = str_at(&sample.manifest("amd64")["layers"][1], "digest").to_owned();
    let archive = tmp.path().join("truncated.tar");
    pack_tar(&sample_image(), &archive, Some(&layer));
    truncate_in_blob(&archive, &layer);

    assert_bad_input(
        archive.as_os_str(),
        &["truncated.tar", short(&layer)],
        TRUNCATED,
    );
}

#[test]
fn layer_digest_mismatch() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let layer = str_at(&layout.files().manifest("amd64")["layers"][1], "digest").to_owned();
    layout.corrupt_blob(&layer);

    assert_bad_input(input.as_os_str(), &[short(&layer)], DIGEST_MISMATCH);
}

#[test]
fn layer_digest_mismatch_in_an_archive() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let layer = str_at(&layout.files().manifest("arm64")["layers"][1], "digest").to_owned();
    layout.corrupt_blob(&layer);
    let archive = tmp.path().join("corrupt.tar");
    pack_tar(&input, &archive, None);

    assert_bad_input(archive.as_os_str(), &[short(&layer)], DIGEST_MISMATCH);
}

#[test]
fn config_size_mismatch() {
    // The config blob is intact; the manifest's descriptor of it claims one
    // byte more (the manifest and the index are re-linked, so only the size
    // is wrong).
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let files = layout.files();
    let manifest = str_at(&files.manifest_descriptor("amd64"), "digest").to_owned();
    let config = files.manifest("amd64")["config"].clone();
    let config_digest = str_at(&config, "digest").to_owned();
    let size = config["size"].as_u64().expect("a config size");
    let new_manifest = layout.rewrite_json_blob(&manifest, |m| {
        m["config"]["size"] = json!(size + 1);
    });
    // The change reached index.json through the index.
    let changed = layout.files();
    assert_eq!(
        changed.manifest_descriptor("amd64")["digest"],
        new_manifest.as_str()
    );
    assert_eq!(changed.manifest("amd64")["config"]["size"], size + 1);

    assert_bad_input(
        input.as_os_str(),
        &[short(&config_digest), short(&new_manifest)],
        &["size"],
    );
}

#[test]
fn missing_blob() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let layer = str_at(&layout.files().manifest("arm64")["layers"][1], "digest").to_owned();
    layout.remove_blob(&layer);

    assert_bad_input(input.as_os_str(), &[short(&layer)], MISSING);
}

#[test]
fn unknown_layer_media_type() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let files = layout.files();
    let manifest = str_at(&files.manifest_descriptor("amd64"), "digest").to_owned();
    let layer = str_at(&files.manifest("amd64")["layers"][1], "digest").to_owned();
    let new_manifest = layout.rewrite_json_blob(&manifest, |m| {
        m["layers"][1]["mediaType"] = json!("application/x-foo");
    });
    assert_eq!(
        layout.files().manifest("amd64")["layers"][1]["mediaType"],
        "application/x-foo"
    );

    assert_bad_input(
        input.as_os_str(),
        &["application/x-foo", short(&layer), short(&new_manifest)],
        MEDIA_TYPE,
    );
}

#[test]
fn malformed_index_json() {
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let index = input.join("index.json");
    let bytes = fs::read(&index).expect("read index.json");
    fs::write(&index, &bytes[..bytes.len() / 2]).expect("write index.json");

    assert_bad_input(input.as_os_str(), &["index.json"], BAD_JSON);
}

#[test]
fn empty_directory_is_not_an_image() {
    let tmp = tempdir();
    let input = mkdir(tmp.path(), "not-an-image-dir");

    assert_bad_input(input.as_os_str(), &["not-an-image-dir"], NOT_AN_IMAGE);
}

#[test]
fn random_file_is_not_an_image() {
    let tmp = tempdir();
    let input = tmp.path().join("random.bin");
    fs::write(&input, noise(8192)).expect("write random.bin");

    assert_bad_input(input.as_os_str(), &["random.bin"], NOT_AN_IMAGE);
}

#[test]
fn two_images_need_a_ref() {
    // index.json names two images: the sample's index ("latest") and its
    // amd64 manifest ("amd64-only").
    let tmp = tempdir();
    let input = copy_sample(tmp.path(), "input");
    let layout = Layout::open(&input);
    let files = layout.files();
    let amd64 = files.manifest_descriptor("amd64");
    let amd64_digest = str_at(&amd64, "digest").to_owned();
    let root_digest = str_at(&files.root(), "digest").to_owned();
    let mut index = files.index_json();
    let mut extra = amd64.clone();
    extra["annotations"] = json!({
        ANN_IMAGE_NAME: "docker.io/outport/sample:amd64-only",
        ANN_REF_NAME: "amd64-only",
    });
    index["manifests"]
        .as_array_mut()
        .expect("index.json manifests")
        .push(extra);
    layout.write_index_json(&index);

    // Without REF: an error that lists both names.
    let run = assert_bad_input(input.as_os_str(), &["latest"], &["amd64-only"]);
    assert!(
        run.error_text().contains("latest") && run.error_text().contains("amd64-only"),
        "the error should list both images\n{}",
        run.describe()
    );

    // With REF: that image.
    for (reference, expected) in [("amd64-only", &amd64_digest), ("latest", &root_digest)] {
        let dest = tmp.path().join(format!("{reference}.tar"));
        let run = export(
            &with_ref(&input, reference),
            &[format!("type=oci,dest={}", path_str(&dest))],
            None,
        );
        run.assert_success();
        let output = LayoutFiles::from_tar(&dest);
        output.verify();
        assert_eq!(
            output.root()["digest"],
            expected.as_str(),
            "exporting {reference}"
        );
    }
}

#[test]
fn invalid_option_value() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let run = export(
        sample_image().as_os_str(),
        &[format!(
            "type=oci,tar=maybe,dest={}",
            path_str(&out.join("x"))
        )],
        None,
    );
    assert!(
        matches!(run.code, Some(1 | 2)),
        "expected exit code 1 or 2\n{}",
        run.describe()
    );
    run.assert_error(&["tar"], &["maybe"]);
    assert_empty_or_absent(&out);
}

#[test]
fn unknown_option_key_fails_only_its_instance() {
    // The component rejects the key in `validate`; that instance fails and
    // leaves nothing, while the other output completes.
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let good = out.join("good.tar");
    let bad = out.join("bad.tar");
    let run = export(
        sample_image().as_os_str(),
        &[
            format!("type=oci,dest={}", path_str(&good)),
            format!("type=oci,dest={},foo=bar", path_str(&bad)),
        ],
        None,
    );
    run.assert_code(1);
    run.assert_error(&["instance \"1\""], &["unknown option \"foo\""]);
    assert!(
        good.is_file(),
        "the valid output is written\n{}",
        run.describe()
    );
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("good.tar")],
        "only the valid output is there"
    );
}

#[test]
fn unknown_exporter_type_is_a_usage_error() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let run = export(
        sample_image().as_os_str(),
        &[format!(
            "type=no-such-exporter,dest={}",
            path_str(&out.join("x"))
        )],
        None,
    );
    run.assert_code(2);
    run.assert_error(&["no-such-exporter"], &["no-such-exporter"]);
    assert_empty_or_absent(&out);
}

#[test]
fn malformed_output_spec_is_a_usage_error() {
    // An unterminated quote.
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let run = export(
        sample_image().as_os_str(),
        &[format!("type=oci,\"dest={}", path_str(&out.join("x")))],
        None,
    );
    run.assert_code(2);
    run.error_text();
    assert_empty_or_absent(&out);
}

/// A component that ignores the error a damaged layer gives it and
/// succeeds anyway is failed by the runtime with that error, and its output
/// is discarded: whether it copied the layer (`copy-to-file`) or read it
/// (`blob.read`). The same component succeeds on the intact image.
#[test]
fn a_component_ignoring_a_damaged_blob_is_failed() {
    let tmp = tempdir();
    let intact = copy_sample(tmp.path(), "intact");
    let damaged = copy_sample(tmp.path(), "damaged");
    let layout = Layout::open(&damaged);
    let layer = str_at(&layout.files().manifest("amd64")["layers"][1], "digest").to_owned();
    layout.corrupt_blob(&layer);
    for action in ["ignore-damaged-copy", "ignore-damaged-read"] {
        let spec = |out: &std::path::Path| {
            format!(
                "type=wasm,component={},action={action},dest={},id=sloppy",
                outport_test_programs::MISBEHAVE,
                path_str(&out.join("out.txt"))
            )
        };
        let out = mkdir(tmp.path(), &format!("{action}-intact"));
        export(intact.as_os_str(), &[spec(&out)], None).assert_success();
        assert_eq!(fs::read(out.join("out.txt")).unwrap(), b"complete output");

        let out = mkdir(tmp.path(), &format!("{action}-damaged"));
        let run = export(damaged.as_os_str(), &[spec(&out)], None);
        run.assert_code(1);
        run.assert_error(&["sloppy"], DIGEST_MISMATCH);
        let error = run.error_text();
        assert!(error.contains(short(&layer)), "{action}: {error}");
        assert!(
            error.contains("went on after this error"),
            "{action}: {error}"
        );
        assert_empty_or_absent(&out);
    }
}
