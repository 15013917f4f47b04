//! What the host does with the s3 backend's requests beyond signing them,
//! seen through a relay in front of moto: retries of `503` answers and
//! dropped connections (`retry_mode`, `retry_max_attempts`), and
//! `accept-encoding` as BuildKit (its AWS SDK) sends it, or not at all with
//! `disable_accept_encoding=true`. Blob uploads over 1 MiB, which the host
//! spools to a file to send them again, are retried too.

use std::fs;

use crate::cache_local::{buildkit_cache, buildkit_cache_sized};
use crate::common::flaky::{Fault, Flaky};
use crate::common::*;

use super::moto::*;

/// The spec for `bucket` through the relay on `port`, plus `extra`.
fn relayed_spec(port: u16, bucket: &str, extra: &str) -> String {
    format!(
        "type=s3,bucket={bucket},region=us-east-1,endpoint_url=http://127.0.0.1:{port},use_path_style=true,mode=max{extra}"
    )
}

#[test]
fn answers_503_and_dropped_connections_are_retried() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let upstream = moto.endpoint.trim_start_matches("http://");
    for (fault, extra) in [
        (Fault::Unavailable(2), ""),
        (Fault::Drop(2), ""),
        (Fault::Unavailable(2), ",retry_mode=adaptive"),
    ] {
        let relay = Flaky::start(upstream, fault);
        let bucket = new_bucket(&moto, "retried");
        let spec = relayed_spec(relay.port, &bucket, &format!(",id=flaky{extra}"));
        let run = s3_export(&moto, &bk.dir, &spec);
        run.assert_success();
        assert_no_secret(&moto, &run);
        assert_eq!(relay.faults(), 2, "{fault:?}");
        assert!(
            run.stderr.contains("attempt 3 of 3"),
            "{fault:?}: no retry logged\n{}",
            run.describe()
        );
        let mut expected: Vec<String> = bk.layers.iter().map(|d| format!("blobs/{d}")).collect();
        expected.push("manifests/buildkit".into());
        expected.sort();
        let keys: Vec<String> = objects(&moto, &bucket)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, expected, "{fault:?}");
        for digest in &bk.layers {
            let bytes = object(&moto, &bucket, &format!("blobs/{digest}"));
            assert_eq!(&sha256_digest(&bytes), digest, "{fault:?}");
        }
    }
}

#[test]
fn one_attempt_fails_with_one_line_and_writes_nothing() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let upstream = moto.endpoint.trim_start_matches("http://");
    for (fault, says) in [
        (Fault::Unavailable(1), "503 Service Unavailable"),
        (Fault::Drop(1), "failed"),
    ] {
        let relay = Flaky::start(upstream, fault);
        let bucket = new_bucket(&moto, "once");
        let spec = relayed_spec(relay.port, &bucket, ",id=once,retry_max_attempts=1");
        let run = s3_export(&moto, &bk.dir, &spec);
        run.assert_code(1);
        run.assert_error(&["once"], &[says]);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert_eq!(relay.faults(), 1, "{fault:?}");
        assert!(!run.stderr.contains("attempt 2"), "{}", run.describe());
        assert!(objects(&moto, &bucket).is_empty(), "{fault:?}");
    }
    // Two failures and two attempts: the last failure is the error.
    let relay = Flaky::start(upstream, Fault::Unavailable(2));
    let bucket = new_bucket(&moto, "twice");
    let spec = relayed_spec(relay.port, &bucket, ",id=twice,retry_max_attempts=2");
    let run = s3_export(&moto, &bk.dir, &spec);
    run.assert_code(1);
    run.assert_error(&["twice"], &["503"]);
    assert!(
        run.error_text().contains("2 attempts"),
        "{}",
        run.describe()
    );
    assert!(objects(&moto, &bucket).is_empty());
}

/// Bodies the host holds in memory to send again: larger ones are spooled.
const HELD_IN_MEMORY: u64 = 1 << 20;

#[test]
fn streamed_blob_uploads_are_retried() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache_sized(tmp.path(), "big", true, 1_200_000);
    let upstream = moto.endpoint.trim_start_matches("http://");
    for fault in [Fault::Unavailable(1), Fault::Drop(1)] {
        let relay = Flaky::start_over(upstream, fault, Some(HELD_IN_MEMORY));
        let bucket = new_bucket(&moto, "spooled");
        let run = s3_export(
            &moto,
            &bk.dir,
            &relayed_spec(relay.port, &bucket, ",id=big"),
        );
        run.assert_success();
        assert_eq!(relay.faults(), 1, "{fault:?}");
        assert!(
            run.stderr.contains("attempt 2 of 3"),
            "{fault:?}: no retry logged\n{}",
            run.describe()
        );
        for digest in &bk.layers {
            let hex = digest.trim_start_matches("sha256:");
            let local = fs::read(bk.dir.join("blobs/sha256").join(hex)).unwrap();
            assert!(local.len() as u64 > HELD_IN_MEMORY);
            let stored = object(&moto, &bucket, &format!("blobs/{digest}"));
            assert!(stored == local, "{fault:?}: {digest} differs");
        }
        assert!(
            objects(&moto, &bucket)
                .iter()
                .any(|(k, _)| k == "manifests/buildkit")
        );
    }
    // One attempt: the failed upload fails the export, in one line (a
    // `503` sent while the body is still coming may reach the host as the
    // connection closed under it). Uploads run in parallel, so blobs that
    // were done may stay, as with BuildKit, but the cache is not named.
    let relay = Flaky::start_over(upstream, Fault::Unavailable(1), Some(HELD_IN_MEMORY));
    let bucket = new_bucket(&moto, "spooledonce");
    let spec = relayed_spec(relay.port, &bucket, ",id=bigonce,retry_max_attempts=1");
    let run = s3_export(&moto, &bk.dir, &spec);
    run.assert_code(1);
    run.assert_error(&["bigonce"], &["503", "connection closed"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    assert_eq!(relay.faults(), 1);
    let keys = objects(&moto, &bucket);
    assert!(keys.len() < bk.layers.len(), "{keys:?}");
    assert!(
        keys.iter().all(|(k, _)| k.starts_with("blobs/")),
        "{keys:?}"
    );
}

#[test]
fn bad_retry_or_accept_encoding_options_are_refused() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "badretry");
    for (option, value) in [
        ("retry_mode", "legacy"),
        ("retry_max_attempts", "0"),
        ("retry_max_attempts", "many"),
        ("disable_accept_encoding", "yes"),
    ] {
        let spec = s3_spec(&moto, &bucket, &format!(",id=opts,{option}={value}"));
        let run = s3_export(&moto, &bk.dir, &spec);
        run.assert_code(2);
        run.assert_error(&["opts"], &[&format!("{option}=\"{value}\"")]);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
    }
    assert!(objects(&moto, &bucket).is_empty());
}

#[test]
fn accept_encoding_is_identity_unless_disabled() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let upstream = moto.endpoint.trim_start_matches("http://");
    // A front end that rewrites the signed header: the signature breaks.
    let relay = Flaky::start(upstream, Fault::GfeEncoding);
    let bucket = new_bucket(&moto, "gfe");
    let run = s3_export(
        &moto,
        &bk.dir,
        &relayed_spec(relay.port, &bucket, ",id=gfe,retry_max_attempts=1"),
    );
    run.assert_code(1);
    run.assert_error(&["gfe"], &["403"]);
    let seen = relay.encodings();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|e| e.as_deref() == Some("identity")),
        "{seen:?}"
    );
    assert!(objects(&moto, &bucket).is_empty());
    // Without the header there is nothing to rewrite.
    let relay = Flaky::start(upstream, Fault::GfeEncoding);
    let run = s3_export(
        &moto,
        &bk.dir,
        &relayed_spec(relay.port, &bucket, ",disable_accept_encoding=true"),
    );
    run.assert_success();
    let seen = relay.encodings();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
    assert!(
        objects(&moto, &bucket)
            .iter()
            .any(|(k, _)| k == "manifests/buildkit")
    );
}
