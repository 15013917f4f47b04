//! The options both object-store cache backends read the same way, and
//! what their `validate` answers.

use crate::options::Parsed;
use crate::{CacheOperation, Error, OutputKind};

/// The cache's names: option `name` split on `;` as BuildKit splits it
/// (default `buildkit`); none left is an error.
pub fn names(parsed: &Parsed<'_>) -> Result<Vec<String>, Error> {
    let names: Vec<String> = parsed
        .str("name")
        .unwrap_or("buildkit")
        .split(';')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(Error::InvalidOption("name= names no cache".to_owned()));
    }
    Ok(names)
}

/// What a cache backend's `validate` answers for `operation`: an export
/// writes nothing locally, an import a directory.
pub fn output_kind(operation: CacheOperation) -> OutputKind {
    match operation {
        CacheOperation::ExportCache => OutputKind::None,
        CacheOperation::ImportCache => OutputKind::Directory,
    }
}
