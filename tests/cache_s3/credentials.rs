//! Credentials, bucket and region as BuildKit's s3 cache also takes them:
//! `access_key_id`, `secret_access_key` (and `session_token`) as options,
//! read by the host and never shown; `AWS_BUCKET` and `AWS_REGION`.

use crate::cache_local::buildkit_cache;
use crate::common::*;

use super::moto::*;

#[test]
fn credentials_as_options_and_bucket_and_region_from_the_environment() {
    let moto = moto();
    let tmp = tempdir();
    let bk = buildkit_cache(tmp.path(), "bk", true);
    let bucket = new_bucket(&moto, "optcreds");
    let metadata = tmp.path().join("metadata.json");
    // No credentials in the environment: those of the options are used.
    let spec = format!(
        "type=s3,endpoint_url={},use_path_style=true,id=optcreds,access_key_id={},secret_access_key={}",
        moto.endpoint, moto.access_key, moto.secret_key
    );
    let args = [
        "cache",
        "export",
        path_str(&bk.dir),
        "--export-cache",
        &spec,
        "--metadata-file",
        path_str(&metadata),
    ];
    let run = outport_with_cache(
        args,
        tmp.path(),
        &[
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                path_str(&tmp.path().join("none")),
            ),
            ("AWS_BUCKET", &bucket),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    run.assert_success();
    assert_no_secret(&moto, &run);
    let written = std::fs::read_to_string(&metadata).unwrap();
    assert!(!written.contains(&moto.secret_key), "{written}");
    assert!(
        objects(&moto, &bucket)
            .iter()
            .any(|(k, _)| k == "manifests/buildkit")
    );
    // A key without its secret is refused before anything runs.
    let spec = s3_spec(
        &moto,
        &bucket,
        &format!(",id=half,access_key_id={}", moto.access_key),
    );
    let run = s3_export(&moto, &bk.dir, &spec);
    run.assert_code(2);
    run.assert_error(&["half"], &["go together"]);
    assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
}
