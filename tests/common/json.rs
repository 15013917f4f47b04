//! Digests and JSON.

use std::fs;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest.
#[track_caller]
pub fn digest_hex(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest:?}"))
}

/// The first 12 hex digits of a digest: what an error message names at
/// least, whether it prints the digest in full or abbreviated.
#[track_caller]
pub fn short(digest: &str) -> &str {
    &digest_hex(digest)[..12]
}

/// A string field of a JSON value, or a panic naming it.
#[track_caller]
pub fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {value}"))
}

/// An array field of a JSON value, or a panic naming it.
#[track_caller]
pub fn array_at<'a>(value: &'a Value, key: &str) -> &'a Vec<Value> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("no array {key:?} in {value}"))
}

#[track_caller]
pub fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON: {e}\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    })
}

#[track_caller]
pub fn parse_json(what: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} is not JSON: {e}\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// `os/architecture[/variant]` of a descriptor's or config's platform object.
pub fn platform_string(platform: &Value) -> String {
    let mut s = format!(
        "{}/{}",
        str_at(platform, "os"),
        str_at(platform, "architecture")
    );
    if let Some(variant) = platform["variant"].as_str() {
        s.push('/');
        s.push_str(variant);
    }
    s
}

/// The sorted platforms of an image index's manifests.
pub fn index_platforms(index: &Value) -> Vec<String> {
    let mut platforms: Vec<String> = array_at(index, "manifests")
        .iter()
        .map(|desc| platform_string(&desc["platform"]))
        .collect();
    platforms.sort();
    platforms
}

/// The platforms of the sample image.
pub fn sample_platforms() -> Vec<String> {
    vec!["linux/amd64".to_owned(), "linux/arm64/v8".to_owned()]
}
