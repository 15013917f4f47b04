//! The metadata file (`--metadata-file`): BuildKit's legacy flat response
//! keys at the top level plus one entry per instance, written atomically:
//! image exporters under `"exporters"`, cache instances under `"cache"`
//! (their keys never go into the legacy flat map).
//!
//! [`MetadataFile`] is the file's type; its JSON Schema,
//! `schemas/metadata.schema.json`, is generated from it ([`crate::schemas`]),
//! its doc comments the descriptions.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::instance::{InstanceResult, Status};
use crate::run::session::SessionResult;

/// Written by `outport export --metadata-file FILE`: BuildKit's legacy flat
/// response keys at the top level (the successful instances' keys in output
/// order, the first instance winning on a key), plus every instance's own
/// response kept apart by instance ID. `outport cache export|import
/// --metadata-file FILE` writes the same file, its instances under `cache`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct MetadataFile {
    /// One entry per `--output`, in the order given.
    pub exporters: Vec<InstanceEntry>,
    /// One entry per `--export-cache` / `--import-cache`, in the order given.
    pub cache: Vec<InstanceEntry>,
    /// Frontend response keys (none yet: outport runs no frontend).
    pub frontend: BTreeMap<String, String>,
    /// The input image: how it was named and the digest of the index or
    /// manifest read (`outport export` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The legacy flat keys: the image exporters' responses merged, never a
    /// key named `exporters`, `cache`, `frontend` or `source`.
    #[serde(flatten)]
    pub legacy: Response,
}

/// The input image of an export.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The input as it was read: a registry image's reference normalised
    /// as docker does (`docker://alpine` → `docker.io/library/alpine:latest`),
    /// else the INPUT argument (`oci:DIR:REF`, a path, `docker-daemon:NAME`,
    /// `-`).
    #[serde(rename = "ref")]
    #[schemars(length(min = 1))]
    pub reference: String,
    /// The digest of the image index or manifest the export started from:
    /// the one the registry served for the reference, or the one chosen in
    /// the input (for a legacy `docker save`, the manifest outport
    /// synthesised from its `manifest.json`).
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

/// One instance.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = { "properties": { "status": { "const": "failed" } } },
    "then" = { "required": ["error", "code"], "properties": { "response": { "maxProperties": 0 } } },
    "else" = { "allOf": [{ "not": { "required": ["error"] } }, { "not": { "required": ["code"] } }] }
))]
pub struct InstanceEntry {
    /// The instance ID: `id=` or the output's index.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The exporter type (`type=`).
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub kind: String,
    /// How the instance ended.
    pub status: EntryStatus,
    /// One-line cause, when status is failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's stable code, when status is failed: `limit.NAME`
    /// (`limit.time`, `limit.memory`, `limit.output`, ...), `trap`,
    /// `guest.KIND` (the guest's error: `guest.io`, `guest.invalid-option`,
    /// ...), `output`, `input.damaged`, `policy`, `no-space`, `host`,
    /// `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(limit\.[a-z-]+|trap|guest\.[a-z-]+|output|input\.damaged|policy|no-space|host|cancelled)$"
    ))]
    pub code: Option<String>,
    /// The destination (`dest=`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// Wall time of the instance, in milliseconds.
    pub elapsed_ms: u64,
    /// Cache instances with `ignore-error=true`: a failure is reported here
    /// but does not fail the run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("const" = true))]
    pub ignore_error: bool,
    /// The instance's response: empty when it failed.
    pub response: Response,
}

/// How an instance ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryStatus {
    /// The export succeeded and its output is in place.
    Ok,
    /// The instance failed (`error` says why); its destination holds
    /// nothing new.
    Failed,
}

/// Response keys and their values, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Response(pub BTreeMap<String, ResponseValue>);

/// A response value: a string, or a JSON object for values that were
/// base64 of a JSON object (`containerimage.descriptor`,
/// `containerimage.buildinfo...`).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ResponseValue {
    /// The value as the instance gave it.
    Text(String),
    /// The value decoded: base64 of a JSON object.
    Object(Map<String, Value>),
}

impl JsonSchema for Response {
    fn schema_name() -> Cow<'static, str> {
        "Response".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Response keys and their values: a key's value as the instance gave it, or decoded (see ResponseValue).",
            "type": "object",
            "properties": {
                "containerimage.digest": generator.subschema_for::<DigestSchema>(),
                "containerimage.config.digest": generator.subschema_for::<DigestSchema>(),
                "containerimage.descriptor": generator.subschema_for::<DescriptorSchema>(),
                "image.name": { "type": "string" },
            },
            "additionalProperties": generator.subschema_for::<ResponseValue>(),
        })
    }
}

/// A sha256 digest: `sha256:` and 64 lowercase hex digits.
#[derive(JsonSchema)]
#[schemars(rename = "Digest")]
#[allow(dead_code, reason = "only describes a response value, in the schema")]
struct DigestSchema(#[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))] String);

/// An OCI content descriptor (decoded from the base64 JSON response value).
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Descriptor")]
#[allow(dead_code, reason = "only describes a response value, in the schema")]
struct DescriptorSchema {
    /// The media type of the content.
    media_type: String,
    /// The content's digest.
    digest: DigestSchema,
    /// The content's size in bytes.
    size: u64,
    /// The descriptor's annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    /// The platform of an image manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Map<String, Value>>,
    /// The artifact type of an artifact manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    /// URLs the content may also be fetched from.
    #[serde(skip_serializing_if = "Option::is_none")]
    urls: Option<Vec<String>>,
}

/// The keys of the file's own; a response key of the same name is left out
/// of the legacy flat keys.
const OWN_KEYS: [&str; 4] = ["exporters", "cache", "frontend", "source"];

/// Builds the metadata document for a session.
pub fn document(result: &SessionResult) -> MetadataFile {
    let legacy = result
        .merged_response()
        .into_iter()
        .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| {
            let value = decode_value(&k, &v);
            (k, value)
        })
        .collect();
    MetadataFile {
        exporters: result.exporters.iter().map(instance_entry).collect(),
        cache: result
            .cache
            .iter()
            .map(|c| InstanceEntry {
                ignore_error: c.ignore_error,
                ..instance_entry(&c.instance)
            })
            .collect(),
        frontend: BTreeMap::new(),
        source: None,
        legacy: Response(legacy),
    }
}

fn instance_entry(r: &InstanceResult) -> InstanceEntry {
    InstanceEntry {
        id: r.id.clone(),
        kind: r.kind.clone(),
        status: if r.is_ok() {
            EntryStatus::Ok
        } else {
            EntryStatus::Failed
        },
        error: match &r.status {
            Status::Failed(failure) => Some(failure.message.clone()),
            Status::Ok => None,
        },
        code: match &r.status {
            Status::Failed(failure) => Some(failure.kind.code()),
            Status::Ok => None,
        },
        dest: r.dest.clone(),
        elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
        ignore_error: false,
        response: Response(
            r.response
                .iter()
                .map(|(k, v)| (k.clone(), decode_value(k, v)))
                .collect(),
        ),
    }
}

/// As buildx does, values that are base64 of a JSON object
/// (`containerimage.descriptor`, `containerimage.buildinfo`) appear decoded.
fn decode_value(key: &str, value: &str) -> ResponseValue {
    let decodable =
        key == "containerimage.descriptor" || key.starts_with("containerimage.buildinfo");
    if decodable
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value)
        && let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&bytes)
    {
        return ResponseValue::Object(object);
    }
    ResponseValue::Text(value.to_string())
}

/// The file's bytes: pretty JSON, every object's keys sorted (as a
/// `serde_json::Value` holds them), and a final newline.
pub fn to_bytes(file: &MetadataFile) -> serde_json::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(&serde_json::to_value(file)?)?;
    text.push(b'\n');
    Ok(text)
}

/// Writes the metadata document to `path` atomically (temporary file in the
/// same directory, then rename), with the input's `source` when known.
pub fn write(path: &Path, result: &SessionResult, source: Option<&Source>) -> Result<(), Error> {
    let file = MetadataFile {
        source: source.cloned(),
        ..document(result)
    };
    let text = to_bytes(&file).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    crate::output::atomic::write_file(path, &text).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn result(id: &str, ok: bool, keys: &[(&str, &str)]) -> InstanceResult {
        InstanceResult {
            id: id.into(),
            kind: "oci".into(),
            status: if ok {
                Status::Ok
            } else {
                Status::Failed(crate::instance::Failure::host("boom"))
            },
            response: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            dest: None,
            load: false,
            elapsed: Default::default(),
        }
    }

    #[test]
    fn first_successful_instance_wins_and_descriptor_is_decoded() {
        let desc = base64::engine::general_purpose::STANDARD.encode(br#"{"digest":"sha256:aa"}"#);
        let session = SessionResult {
            exporters: vec![
                result("0", false, &[]),
                result(
                    "1",
                    true,
                    &[
                        ("containerimage.digest", "sha256:one"),
                        ("containerimage.descriptor", &desc),
                    ],
                ),
                result("2", true, &[("containerimage.digest", "sha256:two")]),
            ],
            cache: vec![crate::run::session::CacheResult {
                instance: result("cache-0", false, &[]),
                ignore_error: true,
            }],
        };
        let doc = serde_json::to_value(document(&session)).unwrap();
        assert_eq!(doc["containerimage.digest"], "sha256:one");
        assert_eq!(doc["containerimage.descriptor"]["digest"], "sha256:aa");
        assert_eq!(doc["exporters"][0]["status"], "failed");
        assert_eq!(doc["exporters"][0]["error"], "boom");
        assert_eq!(
            doc["exporters"][2]["response"]["containerimage.digest"],
            "sha256:two"
        );
        assert_eq!(doc["cache"][0]["id"], "cache-0");
        assert_eq!(doc["cache"][0]["ignore_error"], true);
        assert_eq!(doc["cache"][0]["status"], "failed");
    }

    /// The document as it was built before it had a type: a
    /// `serde_json::Value` assembled key by key.
    fn untyped_document(result: &SessionResult) -> Value {
        fn decode(key: &str, value: &str) -> Value {
            let decodable =
                key == "containerimage.descriptor" || key.starts_with("containerimage.buildinfo");
            if decodable
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value)
                && let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&bytes)
            {
                return v;
            }
            Value::String(value.to_string())
        }
        fn entry(r: &InstanceResult) -> Value {
            let response: Map<String, Value> = r
                .response
                .iter()
                .map(|(k, v)| (k.clone(), decode(k, v)))
                .collect();
            let mut entry = serde_json::json!({
                "id": r.id,
                "type": r.kind,
                "status": if r.is_ok() { "ok" } else { "failed" },
                "response": response,
                "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
            });
            if let Some(dest) = &r.dest {
                entry["dest"] = serde_json::json!(dest);
            }
            if let Status::Failed(failure) = &r.status {
                entry["error"] = serde_json::json!(failure.to_string());
                entry["code"] = serde_json::json!(failure.kind.code());
            }
            entry
        }
        let mut top = Map::new();
        for (k, v) in result.merged_response() {
            top.insert(k.clone(), decode(&k, &v));
        }
        top.insert(
            "exporters".into(),
            Value::Array(result.exporters.iter().map(entry).collect()),
        );
        let cache = result.cache.iter().map(|c| {
            let mut e = entry(&c.instance);
            if c.ignore_error {
                e["ignore_error"] = serde_json::json!(true);
            }
            e
        });
        top.insert("cache".into(), Value::Array(cache.collect()));
        top.insert("frontend".into(), Value::Object(Map::new()));
        Value::Object(top)
    }

    #[test]
    fn the_typed_document_writes_the_same_bytes_as_the_untyped_one() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut ok = result(
            "out-1",
            true,
            &[
                ("containerimage.digest", "sha256:one"),
                (
                    "containerimage.descriptor",
                    &b64(r#"{"size":3,"digest":"sha256:aa"}"#),
                ),
                ("containerimage.buildinfo", &b64(r#"{"sources":[]}"#)),
                (
                    "containerimage.buildinfo/linux/amd64",
                    "not base64 \u{e9}\"\n",
                ),
                ("containerimage.buildinfo/x", &b64("[1, 2]")),
                ("exporters", "a key the file owns"),
                ("image.name", "example.com/a:1"),
                ("zz.last", ""),
            ],
        );
        ok.dest = Some("out/a.tar".into());
        ok.elapsed = std::time::Duration::from_millis(1234);
        let mut cache_ok = result("c", true, &[("cache.key", "v")]);
        cache_ok.dest = Some("cache dir".into());
        let session = SessionResult {
            exporters: vec![
                result("0", false, &[]),
                ok,
                result("2", true, &[("containerimage.digest", "sha256:two")]),
            ],
            cache: vec![
                crate::run::session::CacheResult {
                    instance: result("cache-0", false, &[]),
                    ignore_error: true,
                },
                crate::run::session::CacheResult {
                    instance: cache_ok,
                    ignore_error: false,
                },
            ],
        };
        let empty = SessionResult {
            exporters: Vec::new(),
            cache: Vec::new(),
        };
        for session in [session, empty] {
            let mut untyped = serde_json::to_vec_pretty(&untyped_document(&session)).unwrap();
            untyped.push(b'\n');
            let typed = to_bytes(&document(&session)).unwrap();
            assert_eq!(
                String::from_utf8(typed).unwrap(),
                String::from_utf8(untyped).unwrap()
            );
        }
    }
}
