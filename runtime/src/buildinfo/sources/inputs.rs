//! What the user gives for the sources and attributes of a build: the
//! `--build-sources` file and `--attr KEY=VALUE` arguments.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Source, TYPE_GIT, TYPE_HTTP, TYPE_IMAGE};
use crate::buildinfo::error::{AttrProblem, InputError, SourcesError};

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
pub fn read_sources_file(path: &Path) -> Result<Vec<Source>, InputError> {
    std::fs::read(path)
        .map_err(SourcesError::Read)
        .and_then(|bytes| parse_sources(&bytes))
        .map_err(|source| InputError::SourcesFile {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses the contents of a `--build-sources` file.
pub fn parse_sources(bytes: &[u8]) -> Result<Vec<Source>, SourcesError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(SourcesError::Json)?;
    let serde_json::Value::Array(items) = value else {
        return Err(SourcesError::NotAList);
    };
    let mut sources = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let entry: FileSource = serde_json::from_value(item)
            .map_err(|source| SourcesError::Entry { index: i, source })?;
        if ![TYPE_IMAGE, TYPE_GIT, TYPE_HTTP].contains(&entry.kind.as_str()) {
            return Err(SourcesError::UnknownType {
                index: i,
                kind: entry.kind,
            });
        }
        if entry.reference.trim().is_empty() {
            return Err(SourcesError::EmptyRef { index: i });
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
pub fn parse_attrs(attrs: &[String]) -> Result<BTreeMap<String, String>, InputError> {
    let bad = |attr: &String, problem| InputError::Attr {
        attr: attr.clone(),
        problem,
    };
    let mut map = BTreeMap::new();
    for attr in attrs {
        let Some((key, value)) = attr.split_once('=') else {
            return Err(bad(attr, AttrProblem::NotKeyValue));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(bad(attr, AttrProblem::EmptyKey));
        }
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}
