//! The blob store's cap: after a run (`outport export` or `outport cache
//! export`), least recently used blobs go until the store fits
//! `--blob-store-max`, never one the run used; runs sharing the store and
//! pruning it at once each get their image whole.

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

/// The blobs of the single-platform image at `reference`: its manifest,
/// config and layers, as (digest, size).
fn blobs_of(reference: &str) -> Vec<(String, u64)> {
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]);
    let manifest = parse_json("manifest", raw.as_bytes());
    let mut blobs = vec![(sha256_digest(raw.as_bytes()), raw.len() as u64)];
    for descriptor in std::iter::once(&manifest["config"]).chain(array_at(&manifest, "layers")) {
        let size = descriptor["size"].as_u64().expect("a size");
        blobs.push((str_at(descriptor, "digest").to_owned(), size));
    }
    blobs
}

#[test]
fn a_cache_export_prunes_the_store_as_an_export_does() {
    let tmp = tempdir();
    let (old, _) = push_big(&mkdir(tmp.path(), "old"), "cache-prune-old", 64 << 10);
    let (new, _) = push_big(&mkdir(tmp.path(), "new"), "cache-prune-new", 64 << 10);
    let first = mkdir(tmp.path(), "first");
    let (run, _) = pull_one(&first, &old, &["--src-insecure"]);
    run.assert_success();
    let cache = first.join("cache");
    let store = cache.join("blobs/blobs/sha256");
    let stored = |digest: &str| store.join(digest_hex(digest)).exists();
    assert!(stored(&last_layer(&old)));

    // A cap that holds the new image's blobs and not the old one's too.
    let blobs = blobs_of(&new);
    let cap = blobs.iter().map(|(_, size)| size).sum::<u64>() + 1024;
    let dest = tmp.path().join("exported-cache");
    let config = mkdir(tmp.path(), "docker-config");
    let run = outport_with_cache(
        [
            "cache",
            "export",
            &format!("docker://{new}"),
            "--src-insecure",
            "--blob-store-max",
            &cap.to_string(),
            "--export-cache",
            &format!("type=local,dest={}", path_str(&dest)),
        ],
        &cache,
        &[("DOCKER_CONFIG", path_str(&config))],
    );
    run.assert_success();
    assert!(dest.join("index.json").exists(), "{}", run.describe());
    let total: u64 = std::fs::read_dir(&store)
        .expect("the store")
        .map(|e| e.expect("an entry").metadata().expect("metadata").len())
        .sum();
    assert!(total <= cap, "the store holds {total} bytes, over {cap}");
    assert!(!stored(&last_layer(&old)), "the old run's layer was kept");
    for (digest, _) in &blobs {
        assert!(stored(digest), "the run's {digest} was removed");
    }
}

#[test]
fn runs_sharing_the_store_and_pruning_it_each_get_their_image() {
    let tmp = tempdir();
    let images: Vec<(String, std::path::PathBuf)> = ["shared-a", "shared-b"]
        .iter()
        .map(|name| push_big(&mkdir(tmp.path(), name), name, 1 << 20))
        .collect();
    // What each export must be: the same export of the layout pushed.
    let expected: Vec<Vec<u8>> = images
        .iter()
        .enumerate()
        .map(|(i, (_, layout))| {
            let dest = tmp.path().join(format!("expected-{i}.tar"));
            let spec = format!("type=oci,dest={}", path_str(&dest));
            outport(["export", &oci_dir(layout), "--output", &spec]).assert_success();
            std::fs::read(&dest).expect("read")
        })
        .collect();
    let cache = mkdir(tmp.path(), "cache");
    let config = mkdir(tmp.path(), "docker-config");
    // Two runs at once, each pruning the store down to its own blobs
    // when it ends, while the other writes and reads its own; again, with
    // the store holding the other's blobs.
    for round in 0..3 {
        std::thread::scope(|scope| {
            let runs: Vec<_> = images
                .iter()
                .enumerate()
                .map(|(i, (reference, _))| {
                    let dest = tmp.path().join(format!("round-{round}-{i}.tar"));
                    let (cache, config) = (&cache, &config);
                    let run = scope.spawn(move || {
                        let args = [
                            "export".to_owned(),
                            format!("docker://{reference}"),
                            "--src-insecure".into(),
                            "--blob-store-max".into(),
                            "0".into(),
                            "--output".into(),
                            format!("type=oci,dest={}", path_str(&dest)),
                        ];
                        outport_with_cache(&args, cache, &[("DOCKER_CONFIG", path_str(config))])
                    });
                    (i, run)
                })
                .collect();
            for (i, run) in runs {
                let run = run.join().expect("a run");
                run.assert_success();
                let dest = tmp.path().join(format!("round-{round}-{i}.tar"));
                assert!(
                    std::fs::read(&dest).expect("read") == expected[i],
                    "round {round}: image {i} differs"
                );
            }
        });
    }
    let left = std::fs::read_dir(cache.join("blobs/tmp"))
        .expect("the store's tmp")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .count();
    assert_eq!(left, 0, "temporary files left in the store");
}
