//! Tests of redaction, normalisation, merging, the encoding and the inputs.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::inputs::parse_sources;
use super::*;

fn src(kind: &str, reference: &str, pin: &str) -> Source {
    Source {
        kind: kind.into(),
        reference: reference.into(),
        alias: String::new(),
        pin: pin.into(),
    }
}

#[test]
fn redacts_user_info_and_secret_query_parameters() {
    let cases = [
        ("https://user:token@host/x", "https://host/x"),
        (
            "https://ghp_abc@github.com/o/r.git#main",
            "https://github.com/o/r.git#main",
        ),
        ("git://u:p@host:9418/r.git", "git://host:9418/r.git"),
        (
            "ssh://git@github.com/o/r.git",
            "ssh://git@github.com/o/r.git",
        ),
        (
            "git+ssh://git:pw@github.com/o/r.git",
            "git+ssh://git@github.com/o/r.git",
        ),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("bob:hunter2@example.com:o/r.git", "bob@example.com:o/r.git"),
        (
            "https://host/f.tgz?token=s3cr3t&v=1#frag",
            "https://host/f.tgz?v=1#frag",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc&X-Amz-Security-Token=t",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4",
        ),
        ("https://h/x?ACCESS_TOKEN=a&%74oken=b", "https://h/x"),
        (
            "https://a.blob.core.windows.net/c/b?sv=2020&sig=xyz",
            "https://a.blob.core.windows.net/c/b?sv=2020",
        ),
        (
            "docker.io/library/alpine:3.19",
            "docker.io/library/alpine:3.19",
        ),
        (
            "https://host/no-secrets?a=1&b=2",
            "https://host/no-secrets?a=1&b=2",
        ),
        ("plain text", "plain text"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(redact(input), want, "redact({input:?})");
    }
}

#[test]
fn normalizes_image_references() {
    let cases = [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("library/alpine:3", "docker.io/library/alpine:3"),
        ("docker.io/alpine:3", "docker.io/library/alpine:3"),
        ("index.docker.io/foo/bar", "docker.io/foo/bar:latest"),
        ("foo/bar@sha256:ab", "docker.io/foo/bar@sha256:ab"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("ghcr.io/o/r:v1@sha256:cd", "ghcr.io/o/r:v1@sha256:cd"),
        ("localhost/x", "localhost/x:latest"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_image_ref(input), want, "normalize({input:?})");
    }
}

#[test]
fn merge_dedups_sorts_and_pins() {
    let sources = vec![
        src("http", "https://u:p@h/f?token=x", "sha256:1"),
        src("image", "alpine:3.19", "sha256:aa"),
        src("image", "docker.io/library/alpine:3.19", "sha256:aa"),
        src("image", "docker.io/library/alpine:3.19", ""),
        src("git", "https://github.com/o/r.git#main", "abc"),
        src("docker-image", "busybox@sha256:bb", ""),
        src("http", "https://h/f", "sha256:1"),
    ];
    let got = dedup(sources.clone());
    assert_eq!(
        got,
        vec![
            src("image", "docker.io/library/alpine:3.19", "sha256:aa"),
            src("image", "docker.io/library/busybox@sha256:bb", "sha256:bb"),
            src("git", "https://github.com/o/r.git#main", "abc"),
            src("http", "https://h/f", "sha256:1"),
        ]
    );
    // Order of the input does not matter.
    let mut reversed = sources;
    reversed.reverse();
    assert_eq!(dedup(reversed), got);
}

#[test]
fn encoding_is_deterministic_and_round_trips() {
    let mut info = BuildInfo {
        frontend: "dockerfile.v0".into(),
        attrs: BTreeMap::from([
            ("z".to_string(), Some("1".to_string())),
            ("a".to_string(), None),
            (
                "context".to_string(),
                Some("https://x:y@github.com/o/r.git".to_string()),
            ),
        ]),
        sources: vec![
            src("git", "https://github.com/o/r.git", "c1"),
            src("image", "alpine", ""),
        ],
        deps: BTreeMap::from([(
            "base".to_string(),
            BuildInfo {
                sources: vec![src("http", "https://h/f?sig=1", "sha256:2")],
                attrs: BTreeMap::from([("k".to_string(), Some("v".to_string()))]),
                ..BuildInfo::default()
            },
        )]),
    };
    let mut without = info.clone();
    info.normalize(true);
    let encoded = info.encode();
    assert_eq!(BuildInfo::decode(&encoded).unwrap(), info);
    let json = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"frontend":"dockerfile.v0","attrs":{"a":null,"context":"https://github.com/o/r.git","z":"1"},"#,
            r#""sources":[{"type":"image","ref":"docker.io/library/alpine:latest"},"#,
            r#"{"type":"git","ref":"https://github.com/o/r.git","pin":"c1"}],"#,
            r#""deps":{"base":{"attrs":{"k":"v"},"sources":[{"type":"http","ref":"https://h/f","pin":"sha256:2"}]}}}"#
        )
    );
    // Normalising twice changes nothing.
    let mut again = info.clone();
    again.normalize(true);
    assert_eq!(again.encode(), encoded);
    // Without attributes, none are left, nested ones included.
    without.normalize(false);
    assert!(without.attrs.is_empty() && without.deps["base"].attrs.is_empty());
    assert!(BuildInfo::default().is_empty());
    assert_eq!(BuildInfo::default().encode(), "eyJzb3VyY2VzIjpbXX0="); // {"sources":[]}
}

#[test]
fn decodes_buildkit_documents() {
    // BuildKit v0.9 (the seed's example) and v0.10 (docker-image type, null attr).
    let v09 =
        r#"{"sources":[{"type":"image","ref":"docker.io/library/alpine:3.13","pin":"sha256:1d"}]}"#;
    let v010 = r#"{"frontend":"dockerfile.v0","attrs":{"build-arg:X":null,"filename":"Dockerfile"},"sources":[{"type":"docker-image","ref":"docker.io/library/alpine:3.13","pin":"sha256:1d"}],"deps":{"x":{"sources":[]}},"extra":1}"#;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let a = BuildInfo::decode(&b64(v09)).unwrap();
    let mut b = BuildInfo::decode(&b64(v010)).unwrap();
    assert_eq!(b.frontend, "dockerfile.v0");
    assert_eq!(b.attrs["build-arg:X"], None);
    assert!(b.deps.contains_key("x"));
    b.normalize(false);
    assert_eq!(b.sources, a.sources);
    assert!(
        BuildInfo::decode("!!!")
            .unwrap_err()
            .to_string()
            .contains("base64")
    );
    assert!(
        BuildInfo::decode(&b64("[1]"))
            .unwrap_err()
            .to_string()
            .contains("JSON")
    );
}

#[test]
fn sources_file_errors_are_clear() {
    let ok = parse_sources(
        br#"[{"type":"git","ref":"https://h/r.git","pin":"abc"},{"type":"image","ref":"alpine"}]"#,
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].pin, "");
    let err = |s: &str| parse_sources(s.as_bytes()).unwrap_err().to_string();
    assert!(err("{").contains("not valid JSON"));
    assert!(err(r#"{"sources":[]}"#).contains("expected a JSON list"));
    assert!(err(r#"[{"type":"local","ref":"x"}]"#).contains("not one of image, git, http"));
    assert!(err(r#"[{"type":"git","ref":" "}]"#).contains("empty"));
    assert!(err(r#"[{"type":"git","ref":"x","pinn":"y"}]"#).contains("unknown field"));
    assert!(err(r#"[{"type":"git"}]"#).contains("missing field"));
    assert!(!err("[1,\n2").contains('\n'));
}

#[test]
fn attrs_parse() {
    let attrs = parse_attrs(&["a=1".into(), "build-arg:B=x=y".into(), "a=2".into()]).unwrap();
    assert_eq!(attrs["a"], "2");
    assert_eq!(attrs["build-arg:B"], "x=y");
    assert!(parse_attrs(&["nokey".into()]).is_err());
    assert!(parse_attrs(&["=v".into()]).is_err());
}
