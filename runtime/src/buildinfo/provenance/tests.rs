//! Tests of parsing `--attest`, timestamps, package URLs and resource
//! descriptors.

use std::collections::BTreeMap;

use super::*;
use crate::buildinfo::sources::{BuildInfo, Source};

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn attest_values_parse_as_buildx() {
    let parse = |v: &[&str]| Request::from_args(&args(v), Some("10"));
    assert_eq!(parse(&[]).unwrap(), None);
    let r = parse(&["provenance"]).unwrap().unwrap();
    assert_eq!((r.mode, r.builder_id.as_str()), (Mode::Min, BUILDER_ID));
    assert_eq!((r.source_date_epoch, r.started), (Some(10), 10));
    let r = parse(&["type=provenance,mode=max,builder-id=https://ci/x"])
        .unwrap()
        .unwrap();
    assert_eq!((r.mode, r.builder_id.as_str()), (Mode::Max, "https://ci/x"));
    assert_eq!(
        parse(&["provenance,mode=max"]).unwrap().unwrap().mode,
        Mode::Max
    );
    assert_eq!(parse(&["type=provenance,disabled=true"]).unwrap(), None);
    let err = |v: &[&str]| parse(v).unwrap_err().to_string();
    assert!(err(&["sbom"]).contains("not supported"));
    assert!(err(&["provenance,mode=full"]).contains("expected min or max"));
    assert!(err(&["provenance,color=red"]).contains("unknown"));
    assert!(err(&["mode=max"]).contains("no type"));
    assert!(err(&["provenance", "provenance"]).contains("more than once"));
    assert!(err(&["provenance,type=provenance"]).contains("repeated"));
    assert!(
        Request::from_args(&args(&["provenance"]), Some("soon"))
            .unwrap_err()
            .to_string()
            .contains("SOURCE_DATE_EPOCH")
    );
    let r = Request::from_args(&args(&["provenance"]), None)
        .unwrap()
        .unwrap();
    assert_eq!(r.source_date_epoch, None);
    assert!(r.started > 1_600_000_000);
}

#[test]
fn timestamps() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
    assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
    assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
}

#[test]
fn package_urls() {
    let cases = [
        ("alpine:3.19", None, "pkg:docker/alpine@3.19"),
        ("alpine", None, "pkg:docker/alpine@latest"),
        (
            "docker.io/outport/sample:latest",
            Some("linux/arm64/v8"),
            "pkg:docker/outport/sample@latest?platform=linux%2Farm64%2Fv8",
        ),
        (
            "ghcr.io/o/r:v1@sha256:ab",
            Some("linux/amd64"),
            "pkg:docker/ghcr.io/o/r@v1?digest=sha256%3Aab&platform=linux%2Famd64",
        ),
        (
            "tonistiigi/xx@sha256:21",
            None,
            "pkg:docker/tonistiigi/xx?digest=sha256%3A21",
        ),
        (
            "localhost:5000/x:1",
            None,
            "pkg:docker/localhost%3A5000/x@1",
        ),
    ];
    for (reference, platform, want) in cases {
        assert_eq!(image_purl(reference, platform), want, "{reference}");
    }
}

#[test]
fn sources_become_resource_descriptors() {
    let s = |kind: &str, reference: &str, pin: &str| Source {
        kind: kind.into(),
        reference: reference.into(),
        alias: String::new(),
        pin: pin.into(),
    };
    let d = |uri: &str, digest: &[(&str, &str)]| Dependency {
        uri: uri.into(),
        digest: digest
            .iter()
            .map(|(a, h)| (a.to_string(), h.to_string()))
            .collect(),
    };
    let info = BuildInfo {
        sources: vec![
            s("image", "docker.io/library/alpine:3.19", "sha256:aa"),
            s("git", "https://github.com/o/r.git#main", "259a5aa5"),
            s("http", "https://h/f", "sha256:1"),
            s("http", "https://h/unpinned", ""),
        ],
        deps: BTreeMap::from([(
            "base".to_string(),
            BuildInfo {
                sources: vec![
                    s("http", "https://h/f", "sha256:1"),
                    s("git", "https://h/r.git", &"a".repeat(64)),
                ],
                ..BuildInfo::default()
            },
        )]),
        ..BuildInfo::default()
    };
    assert_eq!(
        dependencies(&info),
        vec![
            d("pkg:docker/alpine@3.19", &[("sha256", "aa")]),
            d("https://github.com/o/r.git#main", &[("sha1", "259a5aa5")]),
            d("https://h/f", &[("sha256", "1")]),
            d("https://h/unpinned", &[]),
            d("https://h/r.git", &[("sha256", &"a".repeat(64))]),
        ]
    );
}
