//! Uncompressed views of compressed layers (`uncompressed-layers`, what
//! `tar` and `local` read): checked against the config's diff ID, bounded
//! by the instance's `scratch-bytes`, kept in unnamed temporary files that
//! are gone when the run ends however it ends (success, a full temporary
//! directory, SIGKILL), and a temporary directory too small fails the
//! instance in one line with nothing at its destination.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::common::*;
use crate::crash_safety::tmpfs::Tmpfs;
use crate::crash_safety::{Running, wait_until};
use crate::export_rootfs::{
    Snapshot, add_layer_blobs, assert_same_tree, crafted, file, layer_tar, zstd_raw_blocks,
};

/// The media type of a zstd layer.
const MT_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A gzipped tar holding `tar`.
fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(tar).unwrap();
    gz.finish().unwrap()
}

/// The sample with one more layer: 8 MiB of zeros, gzipped (8 KiB).
fn zeros_image(tmp: &Path) -> std::path::PathBuf {
    crafted(tmp, &[layer_tar(&[file("zeros.bin", &vec![0u8; 8 << 20])])])
}

/// The sample in `tmp/input` with one more gzip layer whose tar is not the
/// one the config's diff ID names: the image, the layer's digest and the
/// tar the config claims.
fn lying_layer_image(tmp: &Path) -> (std::path::PathBuf, String, Vec<u8>) {
    let input = single_platform_sample(tmp, "input", "amd64", "latest");
    let real = layer_tar(&[file("real.txt", b"the bytes of the layer")]);
    let claimed = layer_tar(&[file("claimed.txt", b"what the config says")]);
    let blob = gzip(&real);
    let layer = sha256_digest(&blob);
    add_layer_blobs(&input, &[(blob, &claimed, MT_LAYER_GZIP)]);
    (input, layer, claimed)
}

#[test]
fn a_layer_whose_tar_is_not_its_diff_id_fails_and_writes_nothing() {
    let tmp = tempdir();
    let (input, layer, claimed) = lying_layer_image(tmp.path());
    for (kind, name) in [("local", "rootfs"), ("tar", "rootfs.tar")] {
        let out = mkdir(tmp.path(), &format!("out-{kind}"));
        let spec = format!("type={kind},dest={}", path_str(&out.join(name)));
        let run = export(input.as_os_str(), &[spec], None);
        run.assert_code(1);
        run.assert_error(&[short(&layer)], &["config says", &sha256_digest(&claimed)]);
        assert_empty_or_absent(&out);
    }
}

/// `uncompressed-layers` does not wait for its views: each is usable once
/// its own layer is ready, and a bad layer fails only what uses its view,
/// and the instance when it returns, even if nothing read that view.
#[test]
fn a_bad_layer_whose_view_is_never_read_still_fails_the_instance() {
    let tmp = tempdir();
    let intact = single_platform_sample(tmp.path(), "intact", "amd64", "latest");
    let (input, layer, _) = lying_layer_image(tmp.path());
    let spec = |out: &Path| {
        format!(
            "type=wasm,component={},action=first-view-only,dest={},id=lazy",
            outport_test_programs::MISBEHAVE,
            path_str(&out.join("out.txt"))
        )
    };
    let out = mkdir(tmp.path(), "out-intact");
    let run = export(intact.as_os_str(), &[spec(&out)], None);
    run.assert_success();
    assert_eq!(fs::read(out.join("out.txt")).unwrap(), b"complete output");

    let out = mkdir(tmp.path(), "out");
    let run = export(input.as_os_str(), &[spec(&out)], None);
    run.assert_code(1);
    assert!(
        run.stderr.contains("first view read:"),
        "{}",
        run.describe()
    );
    run.assert_error(&[short(&layer)], &["config says"]);
    let error = run.error_text();
    assert_eq!(error.lines().count(), 1, "{}", run.describe());
    assert!(
        error.contains("checked when the component returned"),
        "{error}"
    );
    assert_empty_or_absent(&out);
}

#[test]
fn views_count_against_the_instances_scratch_limit() {
    let tmp = tempdir();
    let input = zeros_image(tmp.path());
    let policy = tmp.path().join("policy.toml");
    fs::write(
        &policy,
        "[components.local.limits]\nscratch-bytes = 4194304\n",
    )
    .unwrap();
    let out = mkdir(tmp.path(), "out");
    let spec = format!("type=local,dest={}", path_str(&out.join("rootfs")));
    let run = outport([
        "export",
        path_str(&input),
        "--output",
        &spec,
        "--policy",
        path_str(&policy),
    ]);
    run.assert_code(1);
    run.assert_error(&["scratch"], &["scratch limit of 4194304 bytes exceeded"]);
    assert_empty_or_absent(&out);
}

/// A compressed layer's view keeps no decompressed copy: with a temporary
/// directory an eighth of the layer's tar the run works, a run's views take
/// a little room there (the tar's headers) under no name while it lasts and
/// none after, killed or not; a temporary directory that cannot be written
/// fails with one line naming it.
#[test]
fn a_compressed_layers_view_takes_almost_no_temporary_room() {
    let tmp = tempdir();
    let cache = mkdir(tmp.path(), "cache");
    let input = zeros_image(tmp.path());
    let Some(tiny) = Tmpfs::mount(&tmp.path().join("tiny"), 1 << 20) else {
        println!("skipped: mounting a tmpfs needs root (and CAP_SYS_ADMIN)");
        return;
    };
    let out = mkdir(tmp.path(), "out");
    let local = |name: &str| format!("type=local,dest={}", path_str(&out.join(name)));
    let args = |specs: &[String]| {
        let mut args = vec!["export".to_owned(), path_str(&input).to_owned()];
        for spec in specs {
            args.extend(["--output".to_owned(), spec.clone()]);
        }
        args
    };
    let env = [("TMPDIR", path_str(&tiny.path))];
    outport_with_cache(args(&[local("first")]), &cache, &env).assert_success();
    assert_eq!(
        fs::read(out.join("first/zeros.bin")).unwrap(),
        vec![0u8; 8 << 20]
    );
    assert_eq!(dir_names(&tiny.path), Vec::<String>::new());
    assert_eq!(tiny.used(), 0, "the view outlived its run");

    // While a run lasts its views take a little room there, under no
    // name; killed, the run leaves none of it behind.
    let sleeper = format!(
        "type=wasm,component={},action=sleep,output=file,dest={},id=sleeper",
        outport_test_programs::MISBEHAVE,
        path_str(&out.join("sleeper.txt"))
    );
    let mut run = Running::start_with_env(
        args(&[local("second"), sleeper]),
        &cache,
        tmp.path().join("second.stderr"),
        &env,
    );
    wait_until("the view's skeleton to be written", &mut [&mut run], || {
        out.join("second/zeros.bin").exists() && tiny.used() > 0
    });
    let used = tiny.used();
    assert!(used < 256 << 10, "{used} bytes of views for a tar of 8 MiB");
    assert_eq!(dir_names(&tiny.path), Vec::<String>::new());
    run.kill();
    assert_eq!(tiny.used(), 0, "the killed run's view is still there");

    // A temporary directory that cannot be written: one line naming it,
    // nothing at the destination.
    let missing = tmp.path().join("missing");
    let env = [("TMPDIR", path_str(&missing))];
    let run = outport_with_cache(args(&[local("third")]), &cache, &env);
    run.assert_code(1);
    let error = run.error_text();
    assert_eq!(error.lines().count(), 1, "{}", run.describe());
    run.assert_error(&[path_str(&missing)], &["creating a temporary file"]);
    assert!(!out.join("third").exists(), "{}", run.describe());
}

/// The same tars stored gzipped, as zstd and uncompressed give the same
/// `tar` bytes and the same `local` tree: a compressed layer's bytes come
/// out of its view exactly as an uncompressed layer's come out of itself.
#[test]
fn gzip_zstd_and_plain_layers_give_the_same_outputs() {
    let tmp = tempdir();
    let tars = [
        layer_tar(&[
            file("a.txt", b"first layer"),
            file("big.bin", &[5u8; 300_000]),
        ]),
        layer_tar(&[file("b.txt", b"second layer"), file("a.txt", b"replaced")]),
    ];
    let mut outputs = Vec::new();
    for packing in ["gzip", "zstd", "plain"] {
        let input = single_platform_sample(tmp.path(), packing, "amd64", "latest");
        let blobs: Vec<(Vec<u8>, &[u8], &str)> = tars
            .iter()
            .map(|tar| match packing {
                "gzip" => (gzip(tar), tar.as_slice(), MT_LAYER_GZIP),
                "zstd" => (zstd_raw_blocks(tar), tar.as_slice(), MT_LAYER_ZSTD),
                _ => (tar.clone(), tar.as_slice(), MT_LAYER_PLAIN),
            })
            .collect();
        add_layer_blobs(&input, &blobs);
        let out = mkdir(tmp.path(), &format!("out-{packing}"));
        let rootfs = out.join("rootfs");
        let tar = out.join("rootfs.tar");
        let run = export(
            input.as_os_str(),
            &[
                format!("type=local,dest={}", path_str(&rootfs)),
                format!("type=tar,dest={}", path_str(&tar)),
            ],
            None,
        );
        run.assert_success();
        outputs.push((packing, Snapshot::of_dir(&rootfs), fs::read(&tar).unwrap()));
    }
    let (_, tree0, tar0) = &outputs[0];
    assert_eq!(
        fs::read(tmp.path().join("out-gzip/rootfs/a.txt")).unwrap(),
        b"replaced"
    );
    for (packing, tree, tar) in &outputs[1..] {
        assert_same_tree(tree, tree0, packing);
        assert!(tar == tar0, "{packing}: the tar differs from gzip's");
    }
}

/// Runs the misbehave component's `action` on the image of one gzip layer
/// of zeros; the export succeeds and its response is the answer.
fn misbehave_on_zeros(action: &str) -> serde_json::Value {
    let tmp = tempdir();
    let input = zeros_image(tmp.path());
    let out = mkdir(tmp.path(), "out");
    let spec = format!(
        "type=wasm,component={},action={action},dest={},id=misbehave",
        outport_test_programs::MISBEHAVE,
        path_str(&out.join("out.txt"))
    );
    let meta = tmp.path().join("meta.json");
    export(input.as_os_str(), &[spec], Some(&meta)).assert_success();
    exporter_entry(&read_json(&meta), "misbehave")["response"].clone()
}

/// Each input-stream of a compressed layer's view that reads file bytes
/// decompresses on a thread of its own: an instance holds at most four
/// open at once, the fifth is refused with `limit`, and one can be opened
/// again once they are dropped.
#[test]
fn an_instance_holds_few_streams_of_compressed_views_open() {
    let response = misbehave_on_zeros("view-streams");
    assert_eq!(response["test.streams.open"], "4", "{response:#}");
    let refused = response["test.streams.refused"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused.contains("Limit") && refused.contains("at most 4 streams"),
        "{response:#}"
    );
    assert_eq!(response["test.streams.after"], "opened", "{response:#}");
}

/// `copy-ranges` checks every range before it writes any: a blob index
/// past the list is `invalid-option`, a range past its blob's end
/// `invalid-image`, more than 4,096 blobs `limit`, and the good range
/// listed before each was not written. A compressed layer's view copied
/// in two ranges, the later half listed first, fills the file.
#[test]
fn copy_ranges_checks_every_range_before_writing_any() {
    let response = misbehave_on_zeros("copy-ranges");
    let text = |key: &str| response[key].as_str().unwrap_or_default().to_owned();
    assert!(
        text("test.ranges.index").starts_with("Error::InvalidOption")
            && text("test.ranges.index").contains("range 1 names blob 1"),
        "{response:#}"
    );
    assert!(
        text("test.ranges.past").starts_with("Error::InvalidImage"),
        "{response:#}"
    );
    assert!(
        text("test.ranges.blobs").starts_with("Error::Limit")
            && text("test.ranges.blobs").contains("4097 blobs"),
        "{response:#}"
    );
    assert_eq!(text("test.ranges.size-after"), "0", "{response:#}");
    let size = text("test.ranges.view-size");
    assert_eq!(
        text("test.ranges.copied"),
        format!("Ok({size})"),
        "{response:#}"
    );
    assert_eq!(text("test.ranges.size"), size, "{response:#}");
}
