//! An instance's response: the entries its guest returned, checked
//! against the response limits and turned into a map.

use std::collections::BTreeMap;

use super::failure::{Failure, FailureKind};

/// Most entries in a response.
const MAX_RESPONSE_ENTRIES: usize = 1024;

/// Most bytes (keys and values) in a response.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Checks the guest's response entries and turns them into a map.
pub(super) fn collect_response(
    entries: Vec<crate::host::bindings::types::ResponseEntry>,
) -> Result<BTreeMap<String, String>, Failure> {
    if entries.len() > MAX_RESPONSE_ENTRIES {
        return Err(Failure::limit(
            "response",
            MAX_RESPONSE_ENTRIES as u64,
            format!(
                "response limit of {MAX_RESPONSE_ENTRIES} entries exceeded ({} entries)",
                entries.len()
            ),
        ));
    }
    let total: usize = entries.iter().map(|e| e.key.len() + e.value.len()).sum();
    if total > MAX_RESPONSE_BYTES {
        return Err(Failure::limit(
            "response",
            MAX_RESPONSE_BYTES as u64,
            format!("response limit of {MAX_RESPONSE_BYTES} bytes exceeded ({total} bytes)"),
        ));
    }
    let mut map = BTreeMap::new();
    for entry in entries {
        if entry.key.is_empty()
            || entry
                .key
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Failure::new(
                FailureKind::Output,
                format!(
                    "response key {:?} is empty or has spaces or control characters",
                    entry.key
                ),
            ));
        }
        if map.insert(entry.key.clone(), entry.value).is_some() {
            return Err(Failure::new(
                FailureKind::Output,
                format!("response key {:?} is given twice", entry.key),
            ));
        }
    }
    Ok(map)
}
