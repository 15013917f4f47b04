//! The JSON Schemas of the files outport reads and writes, generated from
//! the Rust types that read and write them (their doc comments are the
//! descriptions):
//!
//! - `schemas/policy.schema.json`: the sandbox policy,
//!   [`Policy`](crate::sandbox::policy::Policy), as it is read;
//! - `schemas/metadata.schema.json`: the metadata file,
//!   [`MetadataFile`](crate::output::metadata::MetadataFile), as it is written.
//!
//! The checked-in files are exactly what [`all`] generates (a unit test
//! checks it); after changing one of those types, write them again with the
//! hidden `outport __schemas DIR`, at the top of the repository:
//! `cargo run -p outport -- __schemas schemas`.

use std::path::{Path, PathBuf};

use schemars::generate::SchemaSettings;
use schemars::transform::transform_subschemas;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

use crate::output::metadata::MetadataFile;
use crate::sandbox::policy::Policy;

/// Where the schemas are published (their `$id`s are under it).
const BASE_ID: &str = "https://github.com/outport/outport/schemas/";

/// One generated schema file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaFile {
    /// Its name in `schemas/`.
    pub name: &'static str,
    /// Its text: pretty JSON and a final newline.
    pub text: String,
}

/// Every generated schema file.
pub fn all() -> Vec<SchemaFile> {
    [
        ("policy.schema.json", policy()),
        ("metadata.schema.json", metadata()),
    ]
    .into_iter()
    .map(|(name, schema)| {
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        SchemaFile { name, text }
    })
    .collect()
}

/// Writes every schema file into `dir`; returns the paths written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    all()
        .into_iter()
        .map(|file| {
            let path = dir.join(file.name);
            crate::output::atomic::write_file(&path, file.text.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// The schema of a policy file (what is read: the deserialize contract).
pub fn policy() -> Schema {
    let settings = SchemaSettings::draft2020_12().for_deserialize();
    let mut schema = generate::<Policy>(settings);
    with_id(&mut schema, "policy.schema.json", "outport sandbox policy");
    schema
}

/// The schema of a metadata file (what is written: the serialize contract).
pub fn metadata() -> Schema {
    let settings = SchemaSettings::draft2020_12().for_serialize();
    let mut schema = generate::<MetadataFile>(settings);
    with_id(&mut schema, "metadata.schema.json", "outport metadata file");
    schema
}

fn generate<T: JsonSchema>(settings: SchemaSettings) -> Schema {
    let mut schema = settings.into_generator().into_root_schema_for::<T>();
    tidy(&mut schema);
    schema
}

/// Sets the root's `$id` and `title` (a type's name is not a title).
fn with_id(schema: &mut Schema, file: &str, title: &str) {
    schema.insert("$id".into(), format!("{BASE_ID}{file}").into());
    schema.insert("title".into(), title.into());
}

/// Makes the generated schema read as the files are written, in every
/// subschema:
/// - no `null`: neither TOML nor the metadata file has one; an unset
///   `Option` is a missing key, so an optional value's schema is its
///   type's;
/// - a description is the doc comment with its lines joined: one line per
///   paragraph.
fn tidy(schema: &mut Schema) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            schema.insert("type".into(), only);
        }
    }
    let null = serde_json::json!({ "type": "null" });
    if let Some(Value::Array(options)) = schema.get_mut("anyOf") {
        options.retain(|option| *option != null);
        if let [only] = options.as_mut_slice() {
            let only = only.take();
            schema.remove("anyOf");
            if let (Some(object), Value::Object(only)) = (schema.as_object_mut(), only) {
                for (key, value) in only {
                    object.entry(key).or_insert(value);
                }
            }
        }
    }
    if let Some(Value::String(description)) = schema.get_mut("description") {
        *description = description
            .split("\n\n")
            .map(|paragraph| paragraph.split('\n').collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    transform_subschemas(&mut tidy, schema);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command, run at the top of the repository, that writes the
    /// generated schemas into `schemas/`.
    const REGENERATE: &str = "cargo run -p outport -- __schemas schemas";

    /// `schemas/` at the top of the repository.
    fn checked_in() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    #[test]
    fn the_checked_in_schemas_are_the_generated_ones() {
        let stale: Vec<&str> = all()
            .iter()
            .filter(|file| {
                let on_disk = std::fs::read_to_string(checked_in().join(file.name));
                on_disk.ok().as_deref() != Some(file.text.as_str())
            })
            .map(|file| file.name)
            .collect();
        assert!(
            stale.is_empty(),
            "schemas/{} differ from what the Rust types generate; to write them again, run \
             at the top of the repository:\n    {REGENERATE}",
            stale.join(", schemas/")
        );
    }

    #[test]
    fn no_schema_allows_null_or_wraps_descriptions() {
        for file in all() {
            assert!(!file.text.contains("\"null\""), "{}", file.name);
            let value: Value = serde_json::from_str(&file.text).unwrap();
            let mut stack = vec![&value];
            while let Some(v) = stack.pop() {
                match v {
                    Value::Object(object) => {
                        if let Some(Value::String(d)) = object.get("description") {
                            let joined = !d.replace("\n\n", "").contains('\n');
                            assert!(joined, "{}: {d}", file.name);
                        }
                        stack.extend(object.values());
                    }
                    Value::Array(items) => stack.extend(items),
                    _ => {}
                }
            }
        }
    }
}
