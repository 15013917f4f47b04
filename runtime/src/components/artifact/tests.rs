//! Tests of references, cache paths and registry error answers.

use std::path::{Path, PathBuf};

use super::client::registry_message;
use outport_oci::digest::is_sha256 as is_sha256_digest;

use super::store::cache_path;
use super::*;

#[test]
fn references() {
    let r = Reference::parse("127.0.0.1:5000/exporters/hello:1.0").unwrap();
    assert_eq!(r.registry, "127.0.0.1:5000");
    assert_eq!(r.repository, "exporters/hello");
    assert_eq!(r.target, Target::Tag("1.0".into()));
    assert_eq!(r.name(), "hello");
    assert_eq!(r.to_string(), "127.0.0.1:5000/exporters/hello:1.0");
    let digest = format!("sha256:{}", "a".repeat(64));
    let r = Reference::parse(&format!("localhost/x@{digest}")).unwrap();
    assert_eq!(r.target, Target::Digest(digest.clone()));
    assert_eq!(r.to_string(), format!("localhost/x@{digest}"));
    for bad in [
        "hello:1.0",
        "exporters/hello:1.0",
        "127.0.0.1:5000/hello",
        "127.0.0.1:5000/Hello:1",
        "127.0.0.1:5000/hello:",
        "127.0.0.1:5000/hello@sha256:abc",
        "127.0.0.1:5000/hello:a/b",
        "bad host:1/x:1",
    ] {
        let e = Reference::parse(bad).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("ref {bad}: ")) && !e.contains('\n'),
            "{e}"
        );
    }
}

#[test]
fn cache_paths_stay_in_the_cache() {
    let dir = Path::new("/c");
    let digest = format!("sha256:{}", "b".repeat(64));
    assert_eq!(
        cache_path(dir, &digest),
        PathBuf::from(format!("/c/sha256/{}.wasm", "b".repeat(64)))
    );
    assert!(!is_sha256_digest("sha256:../../x"));
    assert!(!is_sha256_digest(&format!("sha256:{}", "B".repeat(64))));
}

#[test]
fn registry_error_answers() {
    let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    assert_eq!(
        registry_message(body).as_deref(),
        Some("MANIFEST_UNKNOWN: manifest unknown")
    );
    assert_eq!(registry_message(b"<html>"), None);
}
