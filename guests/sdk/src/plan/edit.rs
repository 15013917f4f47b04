//! Editing a document in place, all other fields kept in their order, and
//! storing the result as a new blob.

use serde_json::{Map, Value};

use crate::bindings::outport::exporter::image::{self, Blob};
use crate::bindings::outport::exporter::types::Error;
use crate::log;

/// Stores a rewritten document as a new blob.
pub(super) fn put(media_type: &str, doc: &Value, what: &str) -> Result<Blob, Error> {
    let bytes = serde_json::to_vec(doc)
        .map_err(|e| Error::Other(format!("serializing rewritten {what}: {e}")))?;
    let blob = image::put_blob(media_type, &bytes)?;
    log::debug(&format!(
        "rewrote {what} with annotations: now {}",
        blob.descriptor().digest
    ));
    Ok(blob)
}

/// Clamps the config's `created` and its history's `created` times to
/// `epoch`; returns whether anything changed.
pub(super) fn clamp_created(doc: &mut Value, epoch: u64, what: &str) -> Result<bool, Error> {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let limit = i64::try_from(epoch)
        .ok()
        .and_then(|e| OffsetDateTime::from_unix_timestamp(e).ok())
        .ok_or_else(|| {
            Error::InvalidOption(format!("source date epoch {epoch} is out of range"))
        })?;
    let formatted = limit
        .format(&Rfc3339)
        .map_err(|e| Error::Other(format!("formatting the source date epoch: {e}")))?;
    let mut changed = false;
    let mut clamp = |slot: Option<&mut Value>| -> Result<(), Error> {
        let Some(slot) = slot else { return Ok(()) };
        let Some(text) = slot.as_str() else {
            return Ok(());
        };
        let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            Error::InvalidImage(format!(
                "{what}: created time {text:?} is not RFC 3339: {e}"
            ))
        })?;
        if time > limit {
            *slot = Value::String(formatted.clone());
            changed = true;
        }
        Ok(())
    };
    clamp(doc.get_mut("created"))?;
    if let Some(history) = doc.get_mut("history").and_then(Value::as_array_mut) {
        for entry in history {
            clamp(entry.get_mut("created"))?;
        }
    }
    Ok(changed)
}

/// Sets `annotations` (existing keys keep their place, new ones are appended).
pub(super) fn set_annotations(
    obj: &mut Map<String, Value>,
    ann: &[(String, String)],
    what: &str,
) -> Result<(), Error> {
    let slot = obj.entry("annotations").or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    let map = slot
        .as_object_mut()
        .ok_or_else(|| Error::InvalidImage(format!("{what}: \"annotations\" is not an object")))?;
    for (k, v) in ann {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(())
}
