//! A small Azure Blob Storage client over `wasi:http`, for cache backends:
//! a container's existence and creation, a blob's existence (`HEAD`),
//! block blobs put whole (streamed by the host, several at once, or small
//! bytes) and read back (into memory, bounded, or spliced into a file by
//! the host). Requests carry no credentials: the host authorises those to
//! the instance's account endpoint (Shared Key, or a SAS token) and the
//! component never sees a key.
//!
//! Needs a world with `wasi:http/outgoing-handler` (`networked-cache-backend`)
//! and a host that allows the endpoint.

use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::bindings::wasi::http::types::{IncomingResponse, Method};
use crate::http::{Body, Transport, method_name, read_answer, send_request};
use crate::object_cache::ObjectStore;
use crate::object_cache::store::{StoreAnswer, error_code, refused, to_file, uploaded, whole};
use crate::s3::encode_key;
use crate::transfer::{Upload, upload_all};
use crate::{Blob, Error};

/// Largest body of an answer read for its status and error only.
const ERROR_BYTES: u64 = 64 << 10;
/// The blob type of every blob put.
const BLOCK_BLOB: (&str, &str) = ("x-ms-blob-type", "BlockBlob");

/// One container of one storage account.
pub struct Container {
    /// `host[:port]` of the account endpoint.
    pub authority: String,
    /// Plain HTTP (an `http://` account URL).
    pub insecure: bool,
    /// The account URL's path (`/devstoreaccount1` for the emulator, else
    /// empty), no trailing `/`.
    pub base_path: String,
    /// The container's name.
    pub name: String,
}

impl Container {
    /// Whether the container exists.
    pub fn exists(&self) -> Result<bool, Error> {
        let (status, code) = self.request(Method::Head, None, &[], Body::None)?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("HEAD", "(the container)", status, code)),
        }
    }

    /// Creates the container (one made meanwhile by someone else is fine).
    pub fn create(&self) -> Result<(), Error> {
        let length = [("content-length", "0".to_owned())];
        let (status, code) = self.request(Method::Put, None, &length, Body::None)?;
        match status {
            201 => Ok(()),
            409 if code.as_deref() == Some("ContainerAlreadyExists") => Ok(()),
            _ => Err(self.refused("PUT", "(the container)", status, code)),
        }
    }

    /// Whether blob `key` exists.
    pub fn blob_exists(&self, key: &str) -> Result<bool, Error> {
        let (status, code) = self.request(Method::Head, Some(key), &[], Body::None)?;
        match status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("HEAD", key, status, code)),
        }
    }

    /// Stores each `(key, blob)` as a block blob unless one is there
    /// already (`If-None-Match: *`), at most `parallel` uploads in flight
    /// at once, the bytes streamed by the host.
    pub fn put_blobs(&self, blobs: &[(String, &Blob)], parallel: usize) -> Result<(), Error> {
        let uploads: Vec<Upload<'_>> = blobs
            .iter()
            .map(|(key, blob)| Upload {
                method: Method::Put,
                insecure: self.insecure,
                authority: self.authority.clone(),
                path: self.path(Some(key)),
                headers: vec![
                    (BLOCK_BLOB.0, BLOCK_BLOB.1.to_owned()),
                    ("if-none-match", "*".to_owned()),
                ],
                blob,
            })
            .collect();
        upload_all(&uploads, parallel, |i, outcome| {
            let (key, blob) = &blobs[i];
            // 409: put meanwhile by someone else; blobs are named by digest.
            let size = blob.descriptor().size;
            uploaded(&self.what(), key, size, outcome, &[201, 409])
        })
    }

    /// Stores `bytes` as block blob `key` (replacing it).
    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), Error> {
        let headers = [
            (BLOCK_BLOB.0, BLOCK_BLOB.1.to_owned()),
            ("content-length", bytes.len().to_string()),
        ];
        let (status, code) = self.request(Method::Put, Some(key), &headers, Body::Bytes(bytes))?;
        match status {
            201 => Ok(()),
            _ => Err(self.refused("PUT", key, status, code)),
        }
    }

    /// Sends one request for the container (`key` none) or a blob, and
    /// reads the answer's status and Azure's error code.
    fn request(
        &self,
        method: Method,
        key: Option<&str>,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<(u16, Option<String>), Error> {
        let response = self.send(method, key, headers, body)?;
        let answer = self.read(key.unwrap_or("(the container)"), response, ERROR_BYTES)?;
        Ok((answer.status, answer.code))
    }

    fn send(
        &self,
        method: Method,
        key: Option<&str>,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<IncomingResponse, Error> {
        let name = method_name(&method).to_owned();
        let target = key.unwrap_or("(the container)");
        let fail =
            |what: Transport| Error::Network(format!("{}: {name} {target}: {what}", self.what()));
        send_request(
            method,
            self.insecure,
            &self.authority,
            &self.path(key),
            headers,
            body,
        )
        .map_err(|e| e.into_error(fail))
    }

    /// The answer's status, its `x-ms-error-code` (else the body's
    /// `<Code>`), and its body up to `limit` bytes.
    fn read(
        &self,
        what: &str,
        response: IncomingResponse,
        limit: u64,
    ) -> Result<StoreAnswer, Error> {
        let header = response
            .headers()
            .get("x-ms-error-code")
            .first()
            .and_then(|v| String::from_utf8(v.clone()).ok());
        let answer = read_answer(response, limit)
            .map_err(|e| Error::Network(format!("{}: {what}: {e}", self.what())))?;
        Ok(StoreAnswer {
            status: answer.status,
            code: header.or_else(|| error_code(&answer.body)),
            body: answer.body,
        })
    }

    /// The path of the container (`key` none, with `?restype=container`)
    /// or of blob `key`.
    fn path(&self, key: Option<&str>) -> String {
        let container = format!("{}/{}", self.base_path, encode_key(&self.name));
        match key {
            None => format!("{container}?restype=container"),
            Some(key) => format!("{container}/{}", encode_key(key)),
        }
    }

    fn what(&self) -> String {
        format!(
            "Azure Blob container {} at {}{}",
            self.name, self.authority, self.base_path
        )
    }

    /// The error for an unexpected answer: status and Azure's error code.
    fn refused(&self, method: &str, key: &str, status: u16, code: Option<String>) -> Error {
        refused(&self.what(), method, key, status, code.as_deref())
    }
}

impl ObjectStore for Container {
    fn what(&self) -> String {
        Container::what(self)
    }

    fn get_bytes(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let response = self.send(Method::Get, Some(key), &[], Body::None)?;
        let answer = self.read(key, response, limit)?;
        whole(&self.what(), "blob", key, answer, limit)
    }

    fn get_to_file(&self, key: &str, file: &Descriptor) -> Result<u64, Error> {
        let response = self.send(Method::Get, Some(key), &[], Body::None)?;
        to_file(&self.what(), key, response, file, |r| {
            self.read(key, r, ERROR_BYTES)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let c = Container {
            authority: "127.0.0.1:1".into(),
            insecure: true,
            base_path: "/devstoreaccount1".into(),
            name: "cache".into(),
        };
        assert_eq!(c.path(None), "/devstoreaccount1/cache?restype=container");
        assert_eq!(
            c.path(Some("p/blobs/sha256:ab")),
            "/devstoreaccount1/cache/p/blobs/sha256:ab"
        );
    }
}
