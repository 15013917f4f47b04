//! A small S3 object client over `wasi:http`, for cache backends: `HEAD`
//! (with the object's `Last-Modified`), `PUT` (blobs streamed by the host,
//! several at once, or small bytes), a copy of an object onto itself that
//! refreshes its date, and `GET` (into memory, bounded, or spliced into a
//! file by the host). Requests carry no credentials: the host signs those to
//! the instance's S3 endpoint (SigV4) and the component never sees a secret.
//!
//! Needs a world with `wasi:http/outgoing-handler` (`networked-cache-backend`)
//! and a host that allows the endpoint.

use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::bindings::wasi::http::types::{IncomingResponse, Method};
use crate::http::{Body, Transport, method_name, read_answer, send_request};
use crate::object_cache::ObjectStore;
use crate::object_cache::store::{StoreAnswer, error_code, refused, to_file, uploaded, whole};
use crate::transfer::{Upload, upload_all};
use crate::{Blob, Error};

/// Largest body of an answer read for its status and error only.
const ERROR_BYTES: u64 = 64 << 10;

/// One bucket at one endpoint.
pub struct Bucket {
    /// `host[:port]` of the endpoint (`s3.REGION.amazonaws.com`).
    pub endpoint: String,
    /// Plain HTTP (an `http://` endpoint URL).
    pub insecure: bool,
    /// The bucket's name.
    pub name: String,
    /// `/BUCKET/KEY` on the endpoint instead of `/KEY` on `BUCKET.endpoint`.
    pub path_style: bool,
}

/// What `HEAD` says of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its `Last-Modified`, in Unix seconds; `None` when the answer has
    /// none that reads as an HTTP date.
    pub last_modified: Option<i64>,
}

impl Bucket {
    /// What `HEAD` says of object `key`; `None` when it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<Head>, Error> {
        let response = self.send(Method::Head, key, &[], Body::None)?;
        let last_modified = response
            .headers()
            .get("last-modified")
            .first()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(http_date);
        let answer = self.read(key, response, ERROR_BYTES)?;
        match answer.status {
            200 => Ok(Some(Head { last_modified })),
            404 => Ok(None),
            _ => Err(self.refused("HEAD", key, &answer)),
        }
    }

    /// Copies object `key` onto itself with its metadata replaced (an
    /// `updated-at` of `now`, Unix seconds), which gives it a new
    /// `Last-Modified`: BuildKit's "touch".
    pub fn touch(&self, key: &str, now: i64) -> Result<(), Error> {
        let stamp = OffsetDateTime::from_unix_timestamp(now)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let headers = [
            (
                "x-amz-copy-source",
                format!("/{}/{}", self.name, encode_key(key)),
            ),
            ("x-amz-metadata-directive", "REPLACE".to_owned()),
            ("x-amz-meta-updated-at", stamp),
            ("content-length", "0".to_owned()),
        ];
        let answer = self.small(Method::Put, key, &headers, Body::None)?;
        // A copy may fail after its 200 has been sent: the body says so.
        let failed = String::from_utf8_lossy(&answer.body).contains("<Error>");
        match answer.status {
            200 if !failed => Ok(()),
            _ => Err(self.refused("PUT (copy onto itself)", key, &answer)),
        }
    }

    /// Stores each `(key, blob)`, at most `parallel` uploads in flight at
    /// once, the bytes streamed by the host.
    pub fn put_blobs(&self, blobs: &[(String, &Blob)], parallel: usize) -> Result<(), Error> {
        let uploads: Vec<Upload<'_>> = blobs
            .iter()
            .map(|(key, blob)| {
                let (authority, path) = self.target(key);
                Upload {
                    method: Method::Put,
                    insecure: self.insecure,
                    authority,
                    path,
                    headers: Vec::new(),
                    blob,
                }
            })
            .collect();
        upload_all(&uploads, parallel, |i, outcome| {
            let (key, blob) = &blobs[i];
            let size = blob.descriptor().size;
            uploaded(&self.what(), key, size, outcome, &[200, 201, 204])
        })
    }

    /// Stores `bytes` as `key`.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let length = [("content-length", bytes.len().to_string())];
        let answer = self.small(Method::Put, key, &length, Body::Bytes(bytes))?;
        match answer.status {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.refused("PUT", key, &answer)),
        }
    }

    /// A request whose answer is small: its status, code and body.
    fn small(
        &self,
        method: Method,
        key: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<StoreAnswer, Error> {
        let response = self.send(method, key, headers, body)?;
        self.read(key, response, ERROR_BYTES)
    }

    /// The answer's status, S3's error code and its body, up to `limit`
    /// bytes.
    fn read(
        &self,
        key: &str,
        response: IncomingResponse,
        limit: u64,
    ) -> Result<StoreAnswer, Error> {
        let answer = read_answer(response, limit)
            .map_err(|e| Error::Network(format!("{}: {key}: {e}", self.what())))?;
        Ok(StoreAnswer {
            status: answer.status,
            code: error_code(&answer.body),
            body: answer.body,
        })
    }

    /// `(authority, path)` of object `key`.
    fn target(&self, key: &str) -> (String, String) {
        if self.path_style {
            (
                self.endpoint.clone(),
                format!("/{}/{}", self.name, encode_key(key)),
            )
        } else {
            (
                format!("{}.{}", self.name, self.endpoint),
                format!("/{}", encode_key(key)),
            )
        }
    }

    /// Sends one request for object `key` and waits for the answer's head.
    fn send(
        &self,
        method: Method,
        key: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<IncomingResponse, Error> {
        let name = method_name(&method).to_owned();
        let fail =
            |what: Transport| Error::Network(format!("{}: {name} {key}: {what}", self.what()));
        let (authority, path) = self.target(key);
        send_request(method, self.insecure, &authority, &path, headers, body)
            .map_err(|e| e.into_error(fail))
    }

    fn what(&self) -> String {
        format!("S3 bucket {} at {}", self.name, self.endpoint)
    }

    /// The error for an unexpected answer to `method` on `key`.
    fn refused(&self, method: &str, key: &str, answer: &StoreAnswer) -> Error {
        refused(
            &self.what(),
            method,
            key,
            answer.status,
            answer.code.as_deref(),
        )
    }
}

impl ObjectStore for Bucket {
    fn what(&self) -> String {
        Bucket::what(self)
    }

    fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let response = self.send(Method::Get, key, &[], Body::None)?;
        let answer = self.read(key, response, limit)?;
        whole(&self.what(), "object", key, answer, limit)
    }

    fn get_to_file(&self, key: &str, file: &Descriptor) -> Result<u64, Error> {
        let response = self.send(Method::Get, key, &[], Body::None)?;
        to_file(&self.what(), key, response, file, |r| {
            self.read(key, r, ERROR_BYTES)
        })
    }
}

/// An object key as a URI path: every byte but unreserved ones, `/` and
/// `:` percent-encoded. The host signs the path as sent; `:` (in every blob
/// key, `sha256:…`) is valid in a path and kept as it is, which both S3 and
/// moto (whose signature check decodes the path) accept.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate,
/// which RFC 2822's syntax covers) in Unix seconds.
fn http_date(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc2822)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            http_date("Mon, 23 Nov 2026 14:31:23 GMT"),
            Some(1_795_444_283)
        );
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(
            encode_key("cache/blobs/sha256:ab cd+"),
            "cache/blobs/sha256:ab%20cd%2B"
        );
    }
}
