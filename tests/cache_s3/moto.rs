//! The S3 server of the tests (moto) and what the tests ask of it: buckets
//! and objects through boto3, cache specs, and outport runs with its
//! credentials.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;

/// The moto endpoint and its access key, from `scripts/test`.
pub(super) struct Moto {
    pub(super) endpoint: String,
    pub(super) access_key: String,
    pub(super) secret_key: String,
}

pub(super) fn moto() -> Moto {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the s3 cache tests need the moto_server scripts/test starts; run scripts/test")
        })
    };
    Moto {
        endpoint: var("OUTPORT_TEST_S3"),
        access_key: var("OUTPORT_TEST_S3_ACCESS_KEY"),
        secret_key: var("OUTPORT_TEST_S3_SECRET_KEY"),
    }
}

/// Runs `python3 -c SCRIPT ARGS...` with boto3 against moto (`s3`, a
/// client with the test key); its stdout. boto3's keys keep `:` unencoded,
/// as the backend sends them: moto checks signatures on the decoded path.
pub(super) fn boto(moto: &Moto, script: &str, args: &[&str]) -> String {
    let prelude = "import sys, boto3\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])\ndef raw_colons(request, **_):\n    request.url = request.url.replace('%3A', ':')\ns3.meta.events.register('before-sign.s3', raw_colons)\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .args([&moto.endpoint, &moto.access_key, &moto.secret_key])
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new bucket no other test uses.
pub(super) fn new_bucket(moto: &Moto, test: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let bucket = format!(
        "outport-{test}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    boto(moto, "s3.create_bucket(Bucket=sys.argv[4])", &[&bucket]);
    bucket
}

/// Every key in `bucket` with its size, sorted.
pub(super) fn objects(moto: &Moto, bucket: &str) -> Vec<(String, u64)> {
    let listing = boto(
        moto,
        "import json\nr = s3.list_objects_v2(Bucket=sys.argv[4])\nprint(json.dumps([[o['Key'], o['Size']] for o in r.get('Contents', [])]))",
        &[bucket],
    );
    let mut objects: Vec<(String, u64)> = serde_json::from_str(&listing).unwrap();
    objects.sort();
    objects
}

/// The bytes of object `key`.
pub(super) fn object(moto: &Moto, bucket: &str, key: &str) -> Vec<u8> {
    let hex = boto(
        moto,
        "print(s3.get_object(Bucket=sys.argv[4], Key=sys.argv[5])['Body'].read().hex())",
        &[bucket, key],
    );
    hex::decode(hex.trim()).unwrap()
}

/// The sha256 digest of the bytes of each of `keys` (one boto3 run).
pub(super) fn object_digests(moto: &Moto, bucket: &str, keys: &[String]) -> Vec<String> {
    let mut args = vec![bucket];
    args.extend(keys.iter().map(String::as_str));
    let digests = boto(
        moto,
        "import hashlib\nfor k in sys.argv[5:]:\n    print('sha256:' + hashlib.sha256(s3.get_object(Bucket=sys.argv[4], Key=k)['Body'].read()).hexdigest())",
        &args,
    );
    digests.lines().map(str::to_owned).collect()
}

/// The `type=s3` spec for `bucket` at moto, path style, plus `extra`.
pub(super) fn s3_spec(moto: &Moto, bucket: &str, extra: &str) -> String {
    format!(
        "type=s3,bucket={bucket},region=us-east-1,endpoint_url={},use_path_style=true{extra}",
        moto.endpoint
    )
}

/// `outport ARGS` with `access_key`/`secret` as the AWS credentials of the
/// environment (no shared file, no profile of the user's).
pub(super) fn with_credentials(args: &[String], access_key: &str, secret: &str) -> Run {
    let cache = tempdir();
    let none = cache.path().join("no-credentials-file");
    outport_with_cache(
        args,
        cache.path(),
        &[
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_SHARED_CREDENTIALS_FILE", path_str(&none)),
        ],
    )
}

pub(super) fn s3_export(moto: &Moto, input: &Path, spec: &str) -> Run {
    s3_export_env(
        input,
        spec,
        &[
            ("AWS_ACCESS_KEY_ID", &moto.access_key),
            ("AWS_SECRET_ACCESS_KEY", &moto.secret_key),
        ],
    )
}

/// `outport cache export INPUT --export-cache SPEC` with no AWS
/// credentials in the environment or a file but those of `env`.
pub(super) fn s3_export_env(input: &Path, spec: &str, env: &[(&str, &str)]) -> Run {
    let cache = tempdir();
    let none = cache.path().join("no-credentials-file");
    let mut vars = vec![
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", path_str(&none)),
    ];
    vars.extend_from_slice(env);
    outport_with_cache(
        ["cache", "export", path_str(input), "--export-cache", spec],
        cache.path(),
        &vars,
    )
}

pub(super) fn s3_import(moto: &Moto, spec: &str, dest: &Path) -> Run {
    let args = [
        "cache".into(),
        "import".into(),
        "--import-cache".into(),
        spec.to_string(),
        "--dest".into(),
        path_str(dest).into(),
    ];
    with_credentials(&args, &moto.access_key, &moto.secret_key)
}

#[track_caller]
pub(super) fn assert_no_secret(moto: &Moto, run: &Run) {
    assert!(
        !run.stderr.contains(&moto.secret_key) && !run.stdout_text().contains(&moto.secret_key),
        "the secret appears in the output\n{}",
        run.describe()
    );
}
