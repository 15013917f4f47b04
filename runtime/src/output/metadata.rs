//! The metadata file (`--metadata-file`): BuildKit's legacy flat response
//! keys at the top level plus one entry per instance, written atomically:
//! image exporters under `"exporters"`, cache instances under `"cache"`
//! (their keys never go into the legacy flat map).

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::instance::{InstanceResult, Status};
use crate::run::session::SessionResult;

/// Builds the metadata document for a session.
pub fn document(result: &SessionResult) -> Value {
    let mut top = Map::new();
    for (k, v) in result.merged_response() {
        top.insert(k.clone(), decode_value(&k, &v));
    }
    top.insert(
        "exporters".to_string(),
        Value::Array(result.exporters.iter().map(instance_entry).collect()),
    );
    top.insert(
        "cache".to_string(),
        Value::Array(
            result
                .cache
                .iter()
                .map(|c| {
                    let mut entry = instance_entry(&c.instance);
                    if c.ignore_error {
                        entry["ignore_error"] = json!(true);
                    }
                    entry
                })
                .collect(),
        ),
    );
    top.insert("frontend".to_string(), Value::Object(Map::new()));
    Value::Object(top)
}

fn instance_entry(r: &InstanceResult) -> Value {
    let response: Map<String, Value> = r
        .response
        .iter()
        .map(|(k, v)| (k.clone(), decode_value(k, v)))
        .collect();
    let mut entry = json!({
        "id": r.id,
        "type": r.kind,
        "status": if r.is_ok() { "ok" } else { "failed" },
        "response": response,
        "elapsed_ms": u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
    });
    if let Some(dest) = &r.dest {
        entry["dest"] = json!(dest);
    }
    if let Status::Failed(message) = &r.status {
        entry["error"] = json!(message);
    }
    entry
}

/// As buildx does, values that are base64 of a JSON object
/// (`containerimage.descriptor`, `containerimage.buildinfo`) appear decoded.
fn decode_value(key: &str, value: &str) -> Value {
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

/// Writes the metadata document to `path` atomically (temporary file in the
/// same directory, then rename).
pub fn write(path: &Path, result: &SessionResult) -> Result<(), Error> {
    let mut text = serde_json::to_vec_pretty(&document(result)).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    text.push(b'\n');
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
                Status::Failed("boom".into())
            },
            response: keys
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            dest: None,
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
        let doc = document(&session);
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
}
