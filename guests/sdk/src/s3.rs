//! A small S3 object client over `wasi:http`, for cache backends: `HEAD`,
//! `PUT` (a blob streamed by the host with `copy-to-stream`, or small
//! bytes) and `GET` (into memory, bounded, or spliced into a file by the
//! host). Requests carry no credentials: the host signs those to the
//! instance's S3 endpoint (SigV4) and the component never sees a secret.
//!
//! Needs a world with `wasi:http/outgoing-handler` (`networked-cache-backend`)
//! and a host that allows the endpoint.

use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::bindings::wasi::http::types::{IncomingResponse, Method};
use crate::distribution::{Body, body_to_file, method_name, read_answer, reason, send_request};
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

impl Bucket {
    /// Whether object `key` exists.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        let (status, body) = self.small(Method::Head, key, Body::None, None)?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("HEAD", key, status, &body)),
        }
    }

    /// Stores `blob` as `key`, its bytes streamed by the host.
    pub fn put_blob(&self, key: &str, blob: &Blob) -> Result<(), Error> {
        let size = blob.descriptor().size;
        self.put(key, Body::Blob(blob), size)
    }

    /// Stores `bytes` as `key`.
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        self.put(key, Body::Bytes(bytes), bytes.len() as u64)
    }

    fn put(&self, key: &str, body: Body<'_>, size: u64) -> Result<(), Error> {
        let (status, answer) = self.small(Method::Put, key, body, Some(size))?;
        match status {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.refused("PUT", key, status, &answer)),
        }
    }

    /// The bytes of object `key` (at most `limit`); `None` when it does not
    /// exist.
    pub fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let response = self.send(Method::Get, key, Body::None, None)?;
        let (status, body) = self.read(key, response, limit)?;
        match status {
            200 if (body.len() as u64) < limit => Ok(Some(body)),
            200 => Err(Error::Network(format!(
                "{}: object {key} is larger than {limit} bytes",
                self.what()
            ))),
            404 => Ok(None),
            _ => Err(self.refused("GET", key, status, &body)),
        }
    }

    /// Writes object `key` into `file` from offset 0, the host splicing the
    /// response body into it; returns the bytes written.
    pub fn get_to_file(&self, key: &str, file: &Descriptor) -> Result<u64, Error> {
        let response = self.send(Method::Get, key, Body::None, None)?;
        if response.status() != 200 {
            let (status, body) = self.read(key, response, ERROR_BYTES)?;
            return Err(self.refused("GET", key, status, &body));
        }
        body_to_file(response, file, |what| {
            Error::Network(format!("{}: GET {key}: {what}", self.what()))
        })
    }

    /// A request whose answer is small: its status and body.
    fn small(
        &self,
        method: Method,
        key: &str,
        body: Body<'_>,
        length: Option<u64>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let response = self.send(method, key, body, length)?;
        self.read(key, response, ERROR_BYTES)
    }

    /// The answer's status and its body, up to `limit` bytes.
    fn read(
        &self,
        key: &str,
        response: IncomingResponse,
        limit: u64,
    ) -> Result<(u16, Vec<u8>), Error> {
        read_answer(response, limit)
            .map(|a| (a.status, a.body))
            .map_err(|e| Error::Network(format!("{}: {key}: {e}", self.what())))
    }

    /// Sends one request for object `key` and waits for the answer's head.
    fn send(
        &self,
        method: Method,
        key: &str,
        body: Body<'_>,
        length: Option<u64>,
    ) -> Result<IncomingResponse, Error> {
        let name = method_name(&method).to_owned();
        let fail = |what: String| Error::Network(format!("{}: {name} {key}: {what}", self.what()));
        let (authority, path) = if self.path_style {
            (
                self.endpoint.clone(),
                format!("/{}/{}", self.name, encode_key(key)),
            )
        } else {
            (
                format!("{}.{}", self.name, self.endpoint),
                format!("/{}", encode_key(key)),
            )
        };
        let headers: Vec<(&str, String)> = length
            .map(|l| ("content-length", l.to_string()))
            .into_iter()
            .collect();
        send_request(method, self.insecure, &authority, &path, &headers, body).map_err(
            |e| match e {
                Ok(what) => fail(what),
                Err(e) => e,
            },
        )
    }

    fn what(&self) -> String {
        format!("S3 bucket {} at {}", self.name, self.endpoint)
    }

    /// The error for an unexpected answer: status and S3's error code.
    fn refused(&self, method: &str, key: &str, status: u16, body: &[u8]) -> Error {
        let text = String::from_utf8_lossy(body);
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| format!(": {code}"))
            .unwrap_or_default();
        Error::Network(format!(
            "{} refused {method} {key}: {status} {}{code}",
            self.what(),
            reason(status)
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(
            encode_key("cache/blobs/sha256:ab cd+"),
            "cache/blobs/sha256:ab%20cd%2B"
        );
    }
}
