//! The azblob cache backend against Azurite (started by `scripts/test`,
//! checking Shared Key signatures): BuildKit's blob names, a round trip
//! byte for byte, the first existing name imported, re-exports that upload
//! nothing, a wrong key, a missing container, a closed port, the key in
//! no output, log or metadata, and retries of `503` answers and dropped
//! connections (through a relay).

use std::net::TcpListener;

use crate::cache_local::{buildkit_cache, read_cache};
use crate::common::flaky::{Fault, Flaky};
use crate::common::*;

mod azurite;

use azurite::*;

#[test]
fn round_trip_in_buildkit_layout_and_nothing_uploaded_twice() {
    let az = azurite();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let container = new_container("round-trip");
    let spec = azblob_spec(&az, &container, ",prefix=ci/,name=main;pr-1,mode=max");
    let metadata = tmp.path().join("export.json");
    let run = azblob_export(&az, &bk.dir, &spec, &metadata);
    run.assert_success();
    assert_no_key(&az, &run, &[&metadata]);
    let response = array_at(&read_json(&metadata), "cache")[0]["response"].clone();
    assert_eq!(response["cache.azblob.uploaded"], "3", "{response}");
    assert_eq!(response["cache.azblob.present"], "0", "{response}");

    // BuildKit's layout: blobs by digest, the cache config under each name,
    // the container created by the export.
    let mut expected: Vec<String> = bk.layers.iter().map(|d| format!("ci/blobs/{d}")).collect();
    expected.extend(["ci/manifests/main".into(), "ci/manifests/pr-1".into()]);
    expected.sort();
    assert_eq!(blob_names(&az, &container), expected);
    let stored = blob(&az, &container, "ci/manifests/main");
    assert_eq!(stored, blob(&az, &container, "ci/manifests/pr-1"));
    let config = parse_json("the stored cache config", &stored);
    let original = parse_json("the cache config", &bk.config);
    assert_eq!(config["records"], original["records"]);
    let bk_files = LayoutFiles::from_dir(&bk.dir);
    for layer in array_at(&config, "layers") {
        let digest = str_at(layer, "blob");
        assert_eq!(layer["annotations"]["mediaType"], MT_LAYER_GZIP);
        assert_eq!(
            blob(&az, &container, &format!("ci/blobs/{digest}")),
            bk_files.blob(digest)
        );
    }

    // Import: the first name that exists; its config, layers and records
    // byte for byte.
    let imported = tmp.path().join("imported");
    let spec_in = azblob_spec(&az, &container, ",prefix=ci,name=missing;pr-1");
    let run = azblob_import(&az, &spec_in, &imported);
    run.assert_success();
    assert_no_key(&az, &run, &[]);
    let back = read_cache(&imported, "pr-1");
    assert_eq!(back.config, stored);
    assert_eq!(back.layers, bk.layers);
    let files = LayoutFiles::from_dir(&imported);
    for digest in &bk.layers {
        assert_eq!(files.blob(digest), bk_files.blob(digest), "{digest}");
    }
    umoci(&["ls", "--layout", path_str(&imported)]);

    // Again, the key as an option this time: nothing new is uploaded.
    let again = tmp.path().join("again.json");
    let with_key = format!("{spec},secret_access_key={}", az.key);
    let args = [
        "cache",
        "export",
        path_str(&bk.dir),
        "--export-cache",
        &with_key,
        "--metadata-file",
        path_str(&again),
    ]
    .map(String::from);
    let run = with_env(&args, &[]);
    run.assert_success();
    assert_no_key(&az, &run, &[&again]);
    let response = array_at(&read_json(&again), "cache")[0]["response"].clone();
    assert_eq!(response["cache.azblob.uploaded"], "0", "{response}");
    assert_eq!(response["cache.azblob.present"], "3", "{response}");
    assert_eq!(blob_names(&az, &container), expected);
}

#[test]
fn refusals_name_the_instance_and_leave_nothing() {
    let az = azurite();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let container = new_container("refusals");
    let metadata = tmp.path().join("m.json");

    // A wrong key: Azurite refuses the signature.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let args = [
        "cache",
        "export",
        path_str(&bk.dir),
        "--export-cache",
        &azblob_spec(&az, &container, ""),
        "--metadata-file",
        path_str(&metadata),
    ]
    .map(String::from);
    let run = with_env(&args, &[("BUILDKIT_AZURE_STORAGE_ACCESS_KEY", wrong)]);
    run.assert_code(1);
    run.assert_error(&["cache-0"], &["403"]);
    assert!(
        run.stderr.contains("BUILDKIT_AZURE_STORAGE_ACCESS_KEY"),
        "{}",
        run.describe()
    );
    assert!(!run.stderr.contains(wrong) && !run.stdout_text().contains(wrong));
    assert_no_key(&az, &run, &[&metadata]);

    // No key at all: a usage error before anything runs.
    let run = with_env(&args, &[]);
    run.assert_code(2);
    run.assert_error(&["cache-0"], &["no credentials", "secret_access_key"]);

    // Importing from a container that does not exist.
    let dest = tmp.path().join("imported");
    let run = azblob_import(&az, &azblob_spec(&az, &container, ""), &dest);
    run.assert_code(1);
    run.assert_error(&[&container], &["does not exist"]);
    assert_empty_or_absent(&dest);
    assert_no_key(&az, &run, &[]);

    // Nothing listens on the port: the host is named.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let spec = format!(
        "type=azblob,account_url=http://127.0.0.1:{closed}/{},container=c",
        az.account
    );
    let run = azblob_export(&az, &bk.dir, &spec, &metadata);
    run.assert_code(1);
    run.assert_error(
        &[&format!("127.0.0.1:{closed}")],
        &["refused", "failed", "connect"],
    );
    assert_no_key(&az, &run, &[&metadata]);
}

#[test]
fn every_cache_backend_page_lists_what_describe_returns() {
    let described = crate::authors::described_options(&["cache", "backends"]);
    for name in ["local", "s3", "registry", "azblob"] {
        assert!(
            described.contains_key(name),
            "outport cache backends lists {name}"
        );
    }
    for name in described.keys() {
        crate::cache_local::assert_docs_match_describe(name);
    }
}

#[test]
fn answers_503_and_dropped_connections_are_retried() {
    let az = azurite();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let rest = az.url.trim_start_matches("http://");
    let (upstream, path) = rest.split_at(rest.find('/').expect("a path in the account URL"));
    for fault in [Fault::Unavailable(2), Fault::Drop(2)] {
        let relay = Flaky::start(upstream, fault);
        let container = new_container("retried");
        let spec = format!(
            "type=azblob,account_url=http://127.0.0.1:{}{path},account_name={},container={container},mode=max",
            relay.port, az.account
        );
        let metadata = tmp.path().join("retried.json");
        let run = azblob_export(&az, &bk.dir, &spec, &metadata);
        run.assert_success();
        assert_no_key(&az, &run, &[&metadata]);
        assert_eq!(relay.faults(), 2, "{fault:?}");
        assert!(run.stderr.contains("attempt 3 of 3"), "{}", run.describe());
        let mut expected: Vec<String> = bk.layers.iter().map(|d| format!("blobs/{d}")).collect();
        expected.push("manifests/buildkit".into());
        expected.sort();
        assert_eq!(blob_names(&az, &container), expected, "{fault:?}");
    }
}
