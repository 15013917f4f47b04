//! What the s3 and azblob clients share: an answer as a store gives it
//! (status, error code, bounded body), the error for an answer it refused,
//! what became of a blob upload, and an object read whole or spliced into
//! a file.

use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::bindings::wasi::http::types::IncomingResponse;
use crate::http::{body_to_file, reason};
use crate::transfer::Outcome;
use crate::{Error, log};

/// An answer of a store, read.
pub(crate) struct StoreAnswer {
    /// The status.
    pub(crate) status: u16,
    /// The store's error code (`NoSuchKey`, `BlobNotFound`), if it gave one.
    pub(crate) code: Option<String>,
    /// The body, up to the limit it was read with.
    pub(crate) body: Vec<u8>,
}

/// The error for an answer `store` refused: the request, the status and
/// the store's error code.
pub(crate) fn refused(
    store: &str,
    method: &str,
    key: &str,
    status: u16,
    code: Option<&str>,
) -> Error {
    let code = code.map(|c| format!(": {c}")).unwrap_or_default();
    Error::Network(format!(
        "{store} refused {method} {key}: {status} {}{code}",
        reason(status)
    ))
}

/// The `<Code>` of an S3 or Azure XML error body.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
}

/// What became of the upload of `key` (`size` bytes) to `store`: done
/// when the answer's status is one of `ok`, else the error.
pub(crate) fn uploaded(
    store: &str,
    key: &str,
    size: u64,
    outcome: Outcome,
    ok: &[u16],
) -> Result<(), Error> {
    let answer = outcome
        .map_err(|e| e.into_error(|what| Error::Network(format!("{store}: PUT {key}: {what}"))))?;
    if !ok.contains(&answer.status) {
        let code = error_code(&answer.body);
        return Err(refused(store, "PUT", key, answer.status, code.as_deref()));
    }
    log::debug(&format!("uploaded {key} ({size} bytes)"));
    Ok(())
}

/// The bytes of `key` (a `noun`: `object`, `blob`) from the answer to its
/// `GET`, read up to `limit` bytes: none when it does not exist, an error
/// when it is larger or refused.
pub(crate) fn whole(
    store: &str,
    noun: &str,
    key: &str,
    answer: StoreAnswer,
    limit: u64,
) -> Result<Option<Vec<u8>>, Error> {
    match answer.status {
        200 if (answer.body.len() as u64) < limit => Ok(Some(answer.body)),
        200 => Err(Error::Network(format!(
            "{store}: {noun} {key} is larger than {limit} bytes"
        ))),
        404 => Ok(None),
        status => Err(refused(store, "GET", key, status, answer.code.as_deref())),
    }
}

/// Splices the body of `response`, the answer to the `GET` of `key`, into
/// `file` from offset 0 (the host moves the bytes); the bytes written. An
/// answer other than `200` is read with `read` and refused.
pub(crate) fn to_file(
    store: &str,
    key: &str,
    response: IncomingResponse,
    file: &Descriptor,
    read: impl FnOnce(IncomingResponse) -> Result<StoreAnswer, Error>,
) -> Result<u64, Error> {
    if response.status() != 200 {
        let answer = read(response)?;
        return Err(refused(
            store,
            "GET",
            key,
            answer.status,
            answer.code.as_deref(),
        ));
    }
    body_to_file(response, file, |what| {
        Error::Network(format!("{store}: GET {key}: {what}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_and_refusals() {
        assert_eq!(
            error_code(b"<?xml?><Error><Code>BlobNotFound</Code></Error>").as_deref(),
            Some("BlobNotFound")
        );
        assert_eq!(error_code(b""), None);
        let Error::Network(text) = refused("S3 bucket b at h", "PUT", "k", 503, Some("SlowDown"))
        else {
            panic!("not a network error");
        };
        assert_eq!(
            text,
            "S3 bucket b at h refused PUT k: 503 Service Unavailable: SlowDown"
        );
    }
}
