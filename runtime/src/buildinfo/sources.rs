//! The build-info document (`moby.buildkit.buildinfo.v0`): its types, the
//! `--build-sources` file, merging, normalisation and credential redaction.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Source type of a base image or any other image.
pub const TYPE_IMAGE: &str = "image";
/// Source type of a git repository.
pub const TYPE_GIT: &str = "git";
/// Source type of a file fetched over HTTP(S).
pub const TYPE_HTTP: &str = "http";

/// The decoded build-info document, in BuildKit's field order (v0.9 wrote
/// only `sources`; v0.10–v0.11 added `frontend`, `attrs` and `deps`).
/// Unknown fields of an input's document are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The frontend that built the image (`dockerfile.v0`), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub frontend: String,
    /// Build attributes (`build-arg:FOO`, `context`, ...); only written
    /// for outputs with `buildinfo-attrs=true`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, Option<String>>,
    /// The sources, deduplicated and sorted.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Build info of named dependencies (nested builds).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deps: BTreeMap<String, BuildInfo>,
}

/// One source of a build.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Source {
    /// `image`, `git` or `http`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What the build referred to (an image reference, a git URL, a URL).
    #[serde(rename = "ref", default)]
    pub reference: String,
    /// The reference as the user wrote it, when it differs (BuildKit).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// What the reference resolved to: a digest or a commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pin: String,
}

impl BuildInfo {
    /// True when the document says nothing.
    pub fn is_empty(&self) -> bool {
        self.frontend.is_empty()
            && self.attrs.is_empty()
            && self.sources.is_empty()
            && self.deps.is_empty()
    }

    /// Decodes a config's `moby.buildkit.buildinfo.v0` value (base64 of JSON).
    pub fn decode(value: &str) -> Result<BuildInfo, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("not build-info JSON: {e}"))
    }

    /// The deterministic encoding: base64 of compact JSON, fields in a fixed
    /// order, maps sorted by key, sources sorted (see [`BuildInfo::normalize`]).
    pub fn encode(&self) -> String {
        // Serialising plain strings, vectors and BTreeMaps cannot fail.
        let json = serde_json::to_vec(self).expect("build info serialises");
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Puts the document in canonical form, recursively through `deps`:
    /// credentials stripped from every URL-like ref, alias and attribute,
    /// image refs normalised, sources deduplicated and sorted; attributes
    /// dropped unless `keep_attrs`.
    pub fn normalize(&mut self, keep_attrs: bool) {
        self.frontend = redact(&self.frontend);
        if keep_attrs {
            for value in self.attrs.values_mut().flatten() {
                *value = redact(value);
            }
        } else {
            self.attrs.clear();
        }
        self.sources = dedup(std::mem::take(&mut self.sources));
        for dep in self.deps.values_mut() {
            dep.normalize(keep_attrs);
        }
    }
}

/// Normalises and redacts each source, drops duplicates and sorts them by
/// reference (as BuildKit does), then type, pin and alias. A source without
/// a pin is dropped when the same type and reference is also pinned.
pub fn dedup(sources: Vec<Source>) -> Vec<Source> {
    let mut by_key: BTreeMap<(String, String, String), Source> = BTreeMap::new();
    for source in sources.into_iter().map(normalize_source) {
        let key = (
            source.reference.clone(),
            source.kind.clone(),
            source.pin.clone(),
        );
        by_key
            .entry(key)
            .and_modify(|kept| {
                if kept.alias.is_empty() {
                    kept.alias = source.alias.clone();
                }
            })
            .or_insert(source);
    }
    let pinned: std::collections::BTreeSet<(String, String)> = by_key
        .values()
        .filter(|s| !s.pin.is_empty())
        .map(|s| (s.reference.clone(), s.kind.clone()))
        .collect();
    by_key
        .into_values()
        .filter(|s| !s.pin.is_empty() || !pinned.contains(&(s.reference.clone(), s.kind.clone())))
        .collect()
}

/// One source in canonical form: BuildKit v0.10's `docker-image` type is
/// `image`; image references are normalised (`alpine` →
/// `docker.io/library/alpine:latest`) and pinned to the digest they carry;
/// every other reference has its credentials stripped.
fn normalize_source(mut source: Source) -> Source {
    if source.kind == "docker-image" {
        source.kind = TYPE_IMAGE.to_string();
    }
    if source.kind == TYPE_IMAGE {
        source.reference = normalize_image_ref(&source.reference);
        if source.pin.is_empty()
            && let Some((_, digest)) = source.reference.rsplit_once('@')
        {
            source.pin = digest.to_string();
        }
    }
    source.reference = redact(&source.reference);
    source.alias = redact(&source.alias);
    source.pin = redact(&source.pin);
    source
}

/// Docker's reference normalisation: a missing registry is `docker.io`, a
/// one-part Docker Hub name lives in `library/`, and a reference with
/// neither tag nor digest means `:latest`. Anything odd is left as given.
pub fn normalize_image_ref(reference: &str) -> String {
    let reference = reference.trim();
    if reference.is_empty() || reference.contains("://") || reference.contains(char::is_whitespace)
    {
        return reference.to_string();
    }
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let has_domain =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    if let Some(rest) = full.strip_prefix("index.docker.io/") {
        full = format!("docker.io/{rest}");
    }
    if full.starts_with("docker.io/") && full.matches('/').count() == 1 {
        full = full.replacen("docker.io/", "docker.io/library/", 1);
    }
    match (tag, digest) {
        (Some(t), Some(d)) => format!("{full}:{t}@{d}"),
        (Some(t), None) => format!("{full}:{t}"),
        (None, Some(d)) => format!("{full}@{d}"),
        (None, None) => format!("{full}:latest"),
    }
}

/// Query parameters whose value is a secret (compared case-insensitively):
/// generic tokens and passwords, OAuth, GitLab, AWS SigV4 and S3 presigned
/// URLs, Google Cloud Storage signed URLs and Azure SAS.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "auth_token",
    "private_token",
    "private-token",
    "job_token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
];

/// Strips credentials from a URL-like string; anything else is returned as
/// is. `scheme://user:pass@host/…` loses its user information entirely (a
/// bare user can be a token, as GitHub's `https://TOKEN@github.com/…`)
/// except that SSH URLs keep the user name (`ssh://git@host/…`), the
/// scp-like `user:pass@host:path` loses the password part only (`git@` is
/// no secret), and query parameters named in [`SECRET_PARAMS`] are removed.
/// The rest of the string is kept byte for byte.
pub fn redact(s: &str) -> String {
    if let Some(scheme_end) = s.find("://")
        && !s[..scheme_end].is_empty()
        && s[..scheme_end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        let after = scheme_end + 3;
        let rest = &s[after..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host = match authority.rsplit_once('@') {
            // An SSH user (`ssh://git@host/…`) is no secret; its password is.
            Some((user_info, host)) if s[..scheme_end].contains("ssh") => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{user}@{host}")
            }
            Some((_, host)) => host.to_string(),
            None => authority.to_string(),
        };
        let tail = redact_query(&rest[authority_end..]);
        return format!("{}{host}{tail}", &s[..after]);
    }
    // scp-like git: user:password@host:path (no scheme, no slash before '@').
    if let Some((user_info, rest)) = s.split_once('@')
        && !user_info.contains('/')
        && let Some((user, _password)) = user_info.split_once(':')
        && rest.contains(':')
    {
        return format!("{user}@{}", redact_query(rest));
    }
    redact_query(s)
}

/// Removes secret parameters from the query of `s` (the part after `?`, up
/// to `#`). Parameter names are compared after percent-decoding.
fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, rest) = s.split_at(q);
    let rest = &rest[1..];
    let (query, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|param| {
            let name = param.split('=').next().unwrap_or_default();
            let name = percent_decode(name).to_ascii_lowercase();
            !SECRET_PARAMS.contains(&name.as_str())
        })
        .collect();
    if kept.is_empty() {
        format!("{head}{fragment}")
    } else {
        format!("{head}?{}{fragment}", kept.join("&"))
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One entry of a `--build-sources` file; unknown fields are an error, so
/// a typo does not silently drop a pin.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    pin: Option<String>,
    #[serde(default)]
    alias: Option<String>,
}

/// Reads a `--build-sources` file: a JSON list of
/// `{"type":"image|git|http","ref":"…","pin":"…"}` (`pin` and `alias`
/// optional). The error is one line naming the file and the problem.
pub fn read_sources_file(path: &Path) -> Result<Vec<Source>, String> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("--build-sources {name}: {e}"))?;
    parse_sources(&bytes).map_err(|e| format!("--build-sources {name}: {e}"))
}

/// Parses the contents of a `--build-sources` file.
pub fn parse_sources(bytes: &[u8]) -> Result<Vec<Source>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let serde_json::Value::Array(items) = value else {
        return Err(
            "expected a JSON list of sources ([{\"type\":\"image|git|http\",\"ref\":...,\"pin\":...}])"
                .to_string(),
        );
    };
    let mut sources = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let entry: FileSource =
            serde_json::from_value(item).map_err(|e| format!("source {i}: {e}"))?;
        if ![TYPE_IMAGE, TYPE_GIT, TYPE_HTTP].contains(&entry.kind.as_str()) {
            return Err(format!(
                "source {i}: type {:?} is not one of image, git, http",
                entry.kind
            ));
        }
        if entry.reference.trim().is_empty() {
            return Err(format!("source {i}: \"ref\" is empty"));
        }
        sources.push(Source {
            kind: entry.kind,
            reference: entry.reference.trim().to_string(),
            alias: entry.alias.unwrap_or_default(),
            pin: entry.pin.unwrap_or_default(),
        });
    }
    Ok(sources)
}

/// Parses `--attr KEY=VALUE` arguments (a later key wins, as with
/// `--build-arg`).
pub fn parse_attrs(attrs: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for attr in attrs {
        let Some((key, value)) = attr.split_once('=') else {
            return Err(format!("--attr {attr:?}: expected KEY=VALUE"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("--attr {attr:?}: the key is empty"));
        }
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
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
        let v09 = r#"{"sources":[{"type":"image","ref":"docker.io/library/alpine:3.13","pin":"sha256:1d"}]}"#;
        let v010 = r#"{"frontend":"dockerfile.v0","attrs":{"build-arg:X":null,"filename":"Dockerfile"},"sources":[{"type":"docker-image","ref":"docker.io/library/alpine:3.13","pin":"sha256:1d"}],"deps":{"x":{"sources":[]}},"extra":1}"#;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let a = BuildInfo::decode(&b64(v09)).unwrap();
        let mut b = BuildInfo::decode(&b64(v010)).unwrap();
        assert_eq!(b.frontend, "dockerfile.v0");
        assert_eq!(b.attrs["build-arg:X"], None);
        assert!(b.deps.contains_key("x"));
        b.normalize(false);
        assert_eq!(b.sources, a.sources);
        assert!(BuildInfo::decode("!!!").unwrap_err().contains("base64"));
        assert!(BuildInfo::decode(&b64("[1]")).unwrap_err().contains("JSON"));
    }

    #[test]
    fn sources_file_errors_are_clear() {
        let ok = parse_sources(br#"[{"type":"git","ref":"https://h/r.git","pin":"abc"},{"type":"image","ref":"alpine"}]"#)
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].pin, "");
        let err = |s: &str| parse_sources(s.as_bytes()).unwrap_err();
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
}
