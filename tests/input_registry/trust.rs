//! Redirects: a blob download follows one to another host (as registries
//! send blobs to S3 or a CDN) and sends it no credential; a manifest's is
//! refused with one line, nothing written.

use super::{pull_one, push_sample, push_sample_as};
use crate::common::blob_relay::Redirects;
use crate::common::*;
use crate::export_registry::{auth_registry, docker_config, registry, unique_repo};

#[test]
fn a_blob_redirect_is_followed_without_the_credentials() {
    let plain = registry("OUTPORT_TEST_REGISTRY");
    let auth = auth_registry();
    let tmp = tempdir();
    let repo = unique_repo("redirect");
    // The same image in both: the registry that asks for credentials
    // sends its blob downloads to the one that does not.
    push_sample_as(
        &format!("{}/{repo}:1", auth.host),
        Some(&format!("{}:{}", auth.user, auth.password)),
    );
    push_sample(&format!("{plain}/{repo}:1"));
    let relay = Redirects::start(&auth.host, &plain, false);
    let front = format!("127.0.0.1:{}", relay.port);
    let config = docker_config(
        tmp.path(),
        &serde_json::json!({"auths": {front.clone(): {"auth": auth.encoded}}}),
    );
    let dest = tmp.path().join("out.tar");
    let cache = mkdir(tmp.path(), "cache");
    let run = outport_with_cache(
        [
            "export",
            &format!("docker://{front}/{repo}:1"),
            "--src-insecure",
            "--output",
            &format!("type=oci,dest={}", path_str(&dest)),
        ],
        &cache,
        &[("DOCKER_CONFIG", path_str(&config))],
    );
    run.assert_success();
    let seen = relay.seen_elsewhere();
    assert!(
        seen.iter().any(|head| head.contains("/blobs/sha256:")),
        "no blob came from the other host: {seen:?}"
    );
    for head in &seen {
        assert!(
            !head.to_ascii_lowercase().contains("\r\nauthorization:"),
            "credentials went to the other host: {head}"
        );
    }
    // The export is the image: skopeo reads it back whole.
    skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", path_str(&dest)),
    ]);
}

#[test]
fn a_manifest_redirect_is_refused() {
    let plain = registry("OUTPORT_TEST_REGISTRY");
    let tmp = tempdir();
    let reference = format!("{plain}/{}:1", unique_repo("redirect-manifest"));
    push_sample(&reference);
    let relay = Redirects::start(&plain, &plain, true);
    let via = reference.replacen(&plain, &format!("127.0.0.1:{}", relay.port), 1);
    let (run, dest) = pull_one(tmp.path(), &via, &["--src-insecure"]);
    run.assert_code(1);
    let error = run.error_text();
    assert!(
        error.lines().count() == 1
            && error.contains("/manifests/1")
            && error.contains("307 Temporary Redirect")
            && error.contains(&format!("127.0.0.1:{}", relay.elsewhere_port))
            && error.contains("not followed"),
        "{error}"
    );
    assert!(relay.seen_elsewhere().is_empty());
    assert!(!dest.exists(), "an output was written");
}
