//! The s3 cache backend against `moto_server` (started by `scripts/test`,
//! checking SigV4 signatures): BuildKit's object keys, round trips, blobs
//! not uploaded twice but refreshed after `touch_refresh`, uploads in
//! flight bounded by `upload_parallelism` (seen by a relay in front of
//! moto), refused credentials, an unreachable endpoint, `ignore-error`, and
//! the secret in no output; in `retries.rs`, retries and `accept-encoding`
//! through a relay that fails requests; in `credentials.rs`, credentials as
//! options and the bucket and region from the environment.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::cache_local::{buildkit_cache, cache_export, cache_import, read_cache};
use crate::common::relay::InFlight;
use crate::common::*;

mod credentials;
mod moto;
mod retries;

use moto::*;

#[test]
fn export_writes_buildkit_keys_and_imports_back_byte_for_byte() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "keys");
    let spec = s3_spec(&moto, &bucket, ",prefix=ci/,name=main;pr-1,mode=max");
    let run = s3_export(&moto, &bk.dir, &spec);
    run.assert_success();
    assert_no_secret(&moto, &run);
    // BuildKit's layout: blobs by digest, the cache config under each name.
    let mut expected: Vec<String> = bk.layers.iter().map(|d| format!("ci/blobs/{d}")).collect();
    expected.extend(["ci/manifests/main".into(), "ci/manifests/pr-1".into()]);
    expected.sort();
    let keys: Vec<String> = objects(&moto, &bucket)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, expected);
    let stored = object(&moto, &bucket, "ci/manifests/main");
    assert_eq!(stored, object(&moto, &bucket, "ci/manifests/pr-1"));
    let config = parse_json("the stored cache config", &stored);
    let original = parse_json("the cache config", &bk.config);
    assert_eq!(config["records"], original["records"]);
    let bk_files = LayoutFiles::from_dir(&bk.dir);
    for layer in array_at(&config, "layers") {
        let digest = str_at(layer, "blob");
        assert_eq!(layer["annotations"]["mediaType"], MT_LAYER_GZIP);
        assert_eq!(
            layer["annotations"]["size"],
            bk_files.blob(digest).len() as u64
        );
        assert_eq!(
            object(&moto, &bucket, &format!("ci/blobs/{digest}")),
            bk_files.blob(digest)
        );
    }

    // Import: the stored config and every layer, byte for byte.
    let imported = tmp.path().join("imported");
    let run = s3_import(
        &moto,
        &s3_spec(&moto, &bucket, ",prefix=ci/,name=pr-1"),
        &imported,
    );
    run.assert_success();
    let back = read_cache(&imported, "pr-1");
    assert_eq!(back.config, stored);
    assert_eq!(back.layers, bk.layers);
    let files = LayoutFiles::from_dir(&imported);
    for digest in &bk.layers {
        assert_eq!(files.blob(digest), bk_files.blob(digest), "{digest}");
    }
    umoci(&["ls", "--layout", path_str(&imported)]);

    // The imported cache through the local backend and back to S3: the
    // same config bytes everywhere (its layers are annotated already).
    let local = tmp.path().join("local");
    cache_export(
        &imported,
        &[format!(
            "type=local,dest={},mode=max,tag=pr-1",
            path_str(&local)
        )],
    )
    .assert_success();
    let again = tmp.path().join("again");
    cache_import(
        &format!("type=local,src={},tag=pr-1", path_str(&local)),
        &again,
    )
    .assert_success();
    assert_eq!(read_cache(&again, "pr-1").config, stored);
    let bucket2 = new_bucket(&moto, "again");
    s3_export(&moto, &imported, &s3_spec(&moto, &bucket2, ",mode=max")).assert_success();
    assert_eq!(object(&moto, &bucket2, "manifests/buildkit"), stored);
}

/// `outport cache export INPUT --export-cache SPEC` with a metadata file
/// (in `tmp`): the response of the cache instance, which must succeed.
fn export_response(moto: &Moto, tmp: &Path, input: &Path, spec: &str) -> Value {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let file = tmp.join(format!(
        "metadata-{}.json",
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let run = with_credentials(
        &[
            "cache".into(),
            "export".into(),
            path_str(input).into(),
            "--export-cache".into(),
            spec.to_owned(),
            "--metadata-file".into(),
            path_str(&file).into(),
        ],
        &moto.access_key,
        &moto.secret_key,
    );
    run.assert_success();
    assert_no_secret(moto, &run);
    let doc = read_json(&file);
    array_at(&doc, "cache")[0]["response"].clone()
}

#[test]
fn re_export_uploads_nothing_new() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "reexport");
    let spec = s3_spec(&moto, &bucket, ",mode=max");
    let first = export_response(&moto, tmp.path(), &bk.dir, &spec);
    assert_eq!(first["cache.s3.uploaded"], "3", "{first}");
    let before = objects(&moto, &bucket);
    let second = export_response(&moto, tmp.path(), &bk.dir, &spec);
    assert_eq!(second["cache.s3.uploaded"], "0", "{second}");
    assert_eq!(second["cache.s3.present"], "3", "{second}");
    assert_eq!(second["cache.s3.refreshed"], "0", "{second}");
    assert_eq!(objects(&moto, &bucket), before);
}

/// `Last-Modified` (Unix seconds) and `updated-at` metadata of each of
/// `keys`, as `HEAD` answers.
fn heads(moto: &Moto, bucket: &str, keys: &[String]) -> Vec<(i64, Option<String>)> {
    let mut args = vec![bucket];
    args.extend(keys.iter().map(String::as_str));
    let listing = boto(
        moto,
        "import json\nheads = [s3.head_object(Bucket=sys.argv[4], Key=k) for k in sys.argv[5:]]\nprint(json.dumps([[int(h['LastModified'].timestamp()), h['Metadata'].get('updated-at')] for h in heads]))",
        &args,
    );
    serde_json::from_str(&listing).unwrap()
}

#[test]
fn touch_refresh_copies_older_blobs_onto_themselves() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "touch");
    let spec = |extra: &str| s3_spec(&moto, &bucket, &format!(",mode=max{extra}"));
    let first = export_response(&moto, tmp.path(), &bk.dir, &spec(""));
    assert_eq!(first["cache.s3.uploaded"], "3", "{first}");
    let keys: Vec<String> = bk.layers.iter().map(|d| format!("blobs/{d}")).collect();
    let before = heads(&moto, &bucket, &keys);
    assert!(before.iter().all(|(_, meta)| meta.is_none()), "{before:?}");
    // Last-Modified counts whole seconds: let two go by.
    std::thread::sleep(std::time::Duration::from_secs(2));

    // The default (24h): nothing is old enough, nothing is copied.
    let second = export_response(&moto, tmp.path(), &bk.dir, &spec(""));
    assert_eq!(second["cache.s3.refreshed"], "0", "{second}");
    assert_eq!(heads(&moto, &bucket, &keys), before);

    // 1s: every blob is older, each is copied onto itself.
    let third = export_response(&moto, tmp.path(), &bk.dir, &spec(",touch_refresh=1s"));
    assert_eq!(third["cache.s3.uploaded"], "0", "{third}");
    assert_eq!(third["cache.s3.refreshed"], "3", "{third}");
    let after = heads(&moto, &bucket, &keys);
    for ((key, (old, _)), (new, updated_at)) in keys.iter().zip(&before).zip(&after) {
        assert!(new > old, "{key}: Last-Modified {old} -> {new}");
        assert!(updated_at.is_some(), "{key}: no updated-at metadata");
    }
    assert_eq!(object_digests(&moto, &bucket, &keys), bk.layers);
}

#[test]
fn bad_touch_refresh_or_upload_parallelism_is_refused() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "badopts");
    for (option, value) in [
        ("touch_refresh", "1d"),
        ("touch_refresh", "24"),
        ("touch_refresh", "soon"),
        ("upload_parallelism", "0"),
        ("upload_parallelism", "-2"),
        ("upload_parallelism", "many"),
    ] {
        let spec = s3_spec(&moto, &bucket, &format!(",id=opts,{option}={value}"));
        let run = s3_export(&moto, &bk.dir, &spec);
        run.assert_code(1);
        run.assert_error(&["opts"], &[&format!("{option}=\"{value}\"")]);
    }
    assert!(objects(&moto, &bucket).is_empty());
}

#[test]
fn wrong_credentials_are_a_clear_error_naming_the_instance() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "wrongcreds");
    let wrong = "not-the-secret-0123456789";
    let run = s3_export_env(
        &bk.dir,
        &s3_spec(&moto, &bucket, ",id=s3cache"),
        &[
            ("AWS_ACCESS_KEY_ID", &moto.access_key),
            ("AWS_SECRET_ACCESS_KEY", wrong),
        ],
    );
    run.assert_code(1);
    run.assert_error(&["s3cache"], &["refused the credentials", "403"]);
    assert!(!run.stderr.contains(wrong), "{}", run.describe());
    assert!(objects(&moto, &bucket).is_empty());
    // No credentials at all: refused before anything runs.
    let run = s3_export_env(&bk.dir, &s3_spec(&moto, &bucket, ""), &[]);
    run.assert_code(2);
    run.assert_error(&["cache-0"], &["no AWS credentials"]);
}

#[test]
fn the_shared_credentials_file_is_read() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "credfile");
    let file = tmp.path().join("credentials");
    fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            moto.access_key, moto.secret_key
        ),
    )
    .unwrap();
    let run = s3_export_env(
        &bk.dir,
        &s3_spec(&moto, &bucket, ""),
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", path_str(&file)),
            ("AWS_PROFILE", "ci"),
        ],
    );
    run.assert_success();
    assert_no_secret(&moto, &run);
    assert!(
        objects(&moto, &bucket)
            .iter()
            .any(|(k, _)| k == "manifests/buildkit")
    );
}

#[test]
fn an_unreachable_endpoint_is_a_clear_error() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!(
        "type=s3,bucket=nowhere,region=us-east-1,endpoint_url=http://127.0.0.1:{port},use_path_style=true,id=far"
    );
    let run = s3_export(&moto, &bk.dir, &spec);
    run.assert_code(1);
    run.assert_error(&["far"], &["connection refused"]);
    assert!(
        run.error_text().contains(&format!("127.0.0.1:{port}")),
        "{}",
        run.describe()
    );
    let imported = tmp.path().join("imported");
    let run = s3_import(&moto, &spec, &imported);
    run.assert_code(1);
    run.assert_error(&["far"], &["connection refused"]);
    assert_empty_or_absent(&imported);
}

#[test]
fn importing_a_missing_name_writes_nothing() {
    let moto = moto();
    let tmp = tempdir();
    let bucket = new_bucket(&moto, "missing");
    let imported = tmp.path().join("imported");
    let run = s3_import(&moto, &s3_spec(&moto, &bucket, ",name=nope"), &imported);
    run.assert_code(1);
    run.assert_error(&["cache-0"], &["no cache named \"nope\""]);
    assert_empty_or_absent(&imported);
}

#[test]
fn ignore_error_both_ways() {
    let moto = moto();
    let tmp = tempdir();
    let bucket = new_bucket(&moto, "ignore");
    for ignore in [true, false] {
        let image_out = tmp.path().join(format!("image-{ignore}"));
        let metadata = tmp.path().join(format!("metadata-{ignore}.json"));
        // Wrong credentials: the cache export fails.
        let args: Vec<String> = [
            "export",
            path_str(&sample_image()),
            "--output",
            &format!("type=oci,dest={}", path_str(&image_out)),
            "--metadata-file",
            path_str(&metadata),
            "--export-cache",
            &s3_spec(&moto, &bucket, &format!(",ignore-error={ignore}")),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = with_credentials(&args, &moto.access_key, "wrong-secret");
        if ignore {
            run.assert_success();
        } else {
            run.assert_code(1);
            run.assert_error(&["cache-0"], &["refused the credentials"]);
        }
        assert!(image_out.is_file());
        let doc = read_json(&metadata);
        let entry = &array_at(&doc, "cache")[0];
        assert_eq!(entry["status"], "failed");
        assert_eq!(entry.get("ignore_error").is_some(), ignore);
    }
    assert!(objects(&moto, &bucket).is_empty());
    // And with the right ones, beside an image export.
    let image_out = tmp.path().join("image-ok");
    let metadata = tmp.path().join("metadata-ok.json");
    let args: Vec<String> = [
        "export",
        path_str(&sample_image()),
        "--output",
        &format!("type=oci,dest={}", path_str(&image_out)),
        "--metadata-file",
        path_str(&metadata),
        "--export-cache",
        &s3_spec(&moto, &bucket, ""),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = with_credentials(&args, &moto.access_key, &moto.secret_key);
    run.assert_success();
    assert_no_secret(&moto, &run);
    assert!(fs::read_to_string(&metadata).is_ok_and(|m| !m.contains(&moto.secret_key)));
    assert!(
        objects(&moto, &bucket)
            .iter()
            .any(|(k, _)| k == "manifests/buildkit")
    );
}

/// A BuildKit local cache directory in `parent/name` holding one chain of
/// `count` layers of `size` bytes (layer i on layer i-1, a record for
/// each); its layer digests, base first.
fn chain_cache(parent: &Path, name: &str, count: usize, size: usize) -> (PathBuf, Vec<String>) {
    let dir = mkdir(parent, name);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layout = Layout::open(&dir);
    let blobs: Vec<(String, u64)> = (0..count)
        .map(|i| layout.add_blob(&noise(size + i)[i..]))
        .collect();
    let layers: Vec<Value> = (0..count)
        .map(|i| json!({"blob": blobs[i].0, "parent": i as i64 - 1}))
        .collect();
    let records: Vec<Value> = (0..count)
        .map(|i| {
            let mut record = json!({
                "digest": sha256_digest(format!("step {i}").as_bytes()),
                "layers": [{"layer": i}],
            });
            if i > 0 {
                record["inputs"] = json!([[{"selector": "", "link": i - 1}]]);
            }
            record
        })
        .collect();
    let config = serde_json::to_vec(&json!({"layers": layers, "records": records})).unwrap();
    let (config_digest, config_size) = layout.add_blob(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": config_digest, "size": config_size},
        "layers": blobs.iter().map(|(d, s)| json!({"mediaType": MT_LAYER_GZIP, "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    let (root, root_size) = layout.add_blob(&serde_json::to_vec(&manifest).unwrap());
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": root, "size": root_size,
                       "annotations": {ANN_REF_NAME: "latest"}}],
    }));
    (dir, blobs.into_iter().map(|(d, _)| d).collect())
}

#[test]
fn upload_parallelism_bounds_the_uploads_in_flight() {
    let moto = moto();
    let tmp = tempdir();
    let (cache, layers) = chain_cache(tmp.path(), "chain", 8, 256 << 10);
    let upstream = moto.endpoint.trim_start_matches("http://");
    let mut stored = Vec::new();
    for parallel in [4, 1] {
        let counter = InFlight::puts(upstream, parallel);
        let bucket = new_bucket(&moto, &format!("parallel{parallel}"));
        let spec = format!(
            "type=s3,bucket={bucket},region=us-east-1,endpoint_url=http://127.0.0.1:{},use_path_style=true,mode=max,upload_parallelism={parallel}",
            counter.port
        );
        let response = export_response(&moto, tmp.path(), &cache, &spec);
        assert_eq!(response["cache.s3.uploaded"], "8", "{response}");
        assert_eq!(
            counter.peak(),
            parallel,
            "upload_parallelism={parallel}: uploads in flight at once"
        );
        let mut keys: Vec<String> = layers.iter().map(|d| format!("blobs/{d}")).collect();
        keys.push("manifests/buildkit".into());
        let listed: Vec<String> = objects(&moto, &bucket)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        let digests = object_digests(&moto, &bucket, &keys);
        assert_eq!(digests[..8], layers[..], "the blobs' bytes");
        stored.push(digests);
    }
    assert_eq!(
        stored[0], stored[1],
        "the objects differ with the parallelism"
    );
}

#[test]
fn s3_cache_docs_match_describe() {
    crate::cache_local::assert_docs_match_describe("s3");
}
