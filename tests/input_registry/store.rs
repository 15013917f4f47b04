//! The blob store's cap: after a run, least recently used blobs go until
//! the store fits `--blob-store-max`, never one the run used.

use super::fetching::push_big;
use super::pull_one;
use crate::common::*;

/// The digest of the last layer of the image at `reference`.
fn last_layer(reference: &str) -> String {
    let manifest = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]);
    let layers = array_at(&manifest, "layers");
    str_at(&layers[layers.len() - 1], "digest").to_owned()
}

#[test]
fn the_store_is_pruned_to_its_cap_keeping_the_runs_blobs() {
    let tmp = tempdir();
    let (old, _) = push_big(&mkdir(tmp.path(), "old"), "prune-old", 64 << 10);
    let (new, _) = push_big(&mkdir(tmp.path(), "new"), "prune-new", 64 << 10);
    let stored = |digest: &str| {
        tmp.path()
            .join("cache/blobs/blobs/sha256")
            .join(digest_hex(digest))
            .exists()
    };
    let first = mkdir(tmp.path(), "first");
    let (run, _) = pull_one(&first, &old, &["--src-insecure"]);
    run.assert_success();
    // pull_one's cache is DIR/cache: the second run shares the first's.
    let cache = first.join("cache");
    let second = tmp.path();
    std::fs::rename(&cache, second.join("cache")).expect("move the cache");
    assert!(stored(&last_layer(&old)));
    let (run, dest) = pull_one(second, &new, &["--src-insecure", "--blob-store-max", "0"]);
    run.assert_success();
    assert!(dest.exists());
    assert!(!stored(&last_layer(&old)), "the old run's layer was kept");
    assert!(stored(&last_layer(&new)), "the run's own layer was removed");

    let (run, _) = pull_one(
        &mkdir(tmp.path(), "bad"),
        &new,
        &["--src-insecure", "--blob-store-max", "lots"],
    );
    run.assert_code(2);
    run.assert_error(&["--blob-store-max"], &["is not a size"]);
}
