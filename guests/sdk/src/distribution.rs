//! A small OCI distribution (registry v2) client over `wasi:http`.
//!
//! [`Registry::push_names`] uploads a [`Plan`] to several repositories at
//! once (see `names`): every blob a registry lacks (`HEAD` first; present
//! ones are skipped; other names of the same registry mount them), then the
//! manifests and the index, children first (the plan's walk order,
//! reversed), each after the blobs it names. Layer bytes go from the
//! host into the request body (the host splices the blob's stream into the
//! body's output-stream): they never enter guest memory. Uploads are
//! monolithic (`POST` then `PUT` with `Content-Length`), the `PUT`s
//! [`PARALLEL_UPLOADS`] at once (the SDK's `transfer`);
//! [`Registry::push_blobs`] and [`Registry::put_manifest`]
//! do the same for blobs and documents a caller has (a cache backend).
//! [`Registry::get_manifest`] and [`Registry::get_blob_to_file`] pull: a
//! document into memory (bounded), a blob spliced by the host into a file.
//! Credentials are the host's business: it adds them to the requests; the
//! component never sees them.
//!
//! Needs a world with `wasi:http/outgoing-handler` (`networked-exporter`,
//! `networked-cache-backend`) and a host that allows the registry.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::bindings::wasi::filesystem::types::Descriptor as File;
use crate::bindings::wasi::http::types::Method;
use crate::http::{
    Answer, Body, MAX_ANSWER, Transport, body_to_file, method_name, read_answer, reason,
    send_request,
};
use crate::transfer::{Outcome, Upload, upload_all};
use crate::{Blob, Error, media, reference};

mod names;

pub use names::Target;

/// Blob `PUT`s a push keeps in flight at once: BuildKit's number of
/// connections per registry (`BUILDKIT_MAX_REGISTRY_CONCURRENCY`, default 4,
/// a daemon setting, not an exporter or cache option).
pub const PARALLEL_UPLOADS: usize = 4;
/// Largest manifest or index pulled (distribution's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Redirects followed for one blob download (a registry may send blobs
/// from elsewhere; the host still checks each host).
const MAX_REDIRECTS: usize = 5;
/// The documents [`Registry::get_manifest`] accepts.
const MANIFEST_TYPES: &str = media::ACCEPT_MANIFESTS;

/// One repository at one registry.
pub struct Registry {
    /// `host[:port]`.
    pub authority: String,
    /// Repository path (`team/app`).
    pub repository: String,
    /// Plain HTTP instead of HTTPS (`registry.insecure=true`).
    pub insecure: bool,
}

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushStats {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted: usize,
    /// Manifests and indexes put.
    pub manifests: usize,
}

/// Waits before each new `PUT` of a manifest the registry answered with a
/// blob it does not know (see [`Registry::put_manifest`]).
const BLOB_UNKNOWN_WAITS_MS: [u64; 3] = [50, 200, 800];

impl Registry {
    /// The repository of a normalised image name (`127.0.0.1:5000/app:1`,
    /// `docker.io/library/alpine:3`), with its tag if it has one.
    pub fn for_name(normalized: &str, insecure: bool) -> Result<(Registry, Option<String>), Error> {
        let without_digest = normalized.split('@').next().unwrap_or(normalized);
        if !without_digest.contains('/') {
            return Err(Error::InvalidOption(format!(
                "name {normalized:?}: no repository"
            )));
        }
        let parts = reference::split(normalized);
        // A reference by digest is put by digest, whatever its tag.
        let tag = parts
            .tag
            .filter(|_| parts.digest.is_none())
            .map(str::to_owned);
        let authority = reference::registry_host(parts.domain);
        Ok((
            Registry {
                authority: authority.to_owned(),
                repository: parts.path.into_owned(),
                insecure,
            },
            tag,
        ))
    }

    /// Uploads each of `blobs` the repository lacks, its bytes streamed by
    /// the host: a `HEAD` and an upload session (`POST`) for each in turn,
    /// then the `PUT`s, [`PARALLEL_UPLOADS`] in flight at once. A digest
    /// listed twice is pushed once. Counts uploaded and present blobs.
    pub fn push_blobs(&self, blobs: &[&Blob]) -> Result<PushStats, Error> {
        let mut stats = PushStats::default();
        let mut seen = BTreeSet::new();
        let mut uploads = Vec::new();
        for blob in blobs {
            let digest = blob.descriptor().digest;
            if !seen.insert(digest.clone()) {
                continue;
            }
            if self.has_blob(&digest)? {
                stats.present += 1;
                continue;
            }
            uploads.push(self.upload_to_session(&digest, blob)?);
        }
        upload_all(&uploads, PARALLEL_UPLOADS, |i, outcome| {
            self.uploaded(&uploads[i], outcome)?;
            stats.uploaded += 1;
            Ok(())
        })?;
        Ok(stats)
    }

    /// The upload of `blob` to a new upload session.
    fn upload_to_session<'a>(&self, digest: &str, blob: &'a Blob) -> Result<Upload<'a>, Error> {
        let location = self.start_upload()?;
        Ok(self.upload_at(&location, digest, blob))
    }

    /// The monolithic `PUT` of `blob` to the upload session at `location`.
    fn upload_at<'a>(&self, location: &str, digest: &str, blob: &'a Blob) -> Upload<'a> {
        let (authority, upload) = split_location(location, &self.authority);
        let sep = if upload.contains('?') { '&' } else { '?' };
        Upload {
            method: Method::Put,
            insecure: self.insecure,
            authority,
            path: format!("{upload}{sep}digest={}", digest.replace(':', "%3A")),
            headers: vec![("content-type", "application/octet-stream".into())],
            blob,
        }
    }

    /// Checks the outcome of `upload`.
    fn uploaded(&self, upload: &Upload<'_>, outcome: Outcome) -> Result<(), Error> {
        let Upload {
            authority, path, ..
        } = upload;
        let answer = outcome.map_err(|e| {
            e.into_error(|what| Error::Network(format!("registry {authority}: PUT {path}: {what}")))
        })?;
        match answer.status {
            201 | 204 => Ok(()),
            _ => Err(self.refused(
                "PUT",
                &format!("/v2/{}/blobs/uploads/…", self.repository),
                &answer,
            )),
        }
    }

    fn has_blob(&self, digest: &str) -> Result<bool, Error> {
        let path = format!("/v2/{}/blobs/{digest}", self.repository);
        let answer = self.send(Method::Head, &self.authority, &path, &[], Body::None)?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused("HEAD", &path, &answer)),
        }
    }

    /// Opens an upload session (`POST`): its `Location`.
    fn start_upload(&self) -> Result<String, Error> {
        let path = format!("/v2/{}/blobs/uploads/", self.repository);
        let started = self.send(
            Method::Post,
            &self.authority,
            &path,
            &[("content-length", "0".into())],
            Body::None,
        )?;
        if started.status != 202 {
            return Err(self.refused("POST", &path, &started));
        }
        started.location.ok_or_else(|| {
            Error::Network(format!(
                "registry {}: POST {path}: 202 without a Location header",
                self.authority
            ))
        })
    }

    /// Puts the manifest or index `blob` (of `media_type`) under
    /// `reference`, a tag or its digest.
    pub fn put_manifest(
        &self,
        blob: &Blob,
        media_type: &str,
        reference: &str,
    ) -> Result<(), Error> {
        let bytes = blob.bytes()?;
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let mut waits = BLOB_UNKNOWN_WAITS_MS.iter();
        loop {
            let answer = self.send(
                Method::Put,
                &self.authority,
                &path,
                &[
                    ("content-type", media_type.to_owned()),
                    ("content-length", bytes.len().to_string()),
                ],
                Body::Bytes(&bytes),
            )?;
            if matches!(answer.status, 200 | 201 | 204) {
                return Ok(());
            }
            // Every blob of the manifest was uploaded or found just before,
            // so one the registry calls unknown is being written again by
            // another push of the same blob (distribution's filesystem
            // storage rewrites a repository's link file in place, and a
            // read in between sees none): ask again after a moment.
            let blob_unknown = String::from_utf8_lossy(&answer.body).contains("BLOB_UNKNOWN");
            match waits.next() {
                Some(&ms) if blob_unknown => std::thread::sleep(Duration::from_millis(ms)),
                _ => return Err(self.refused("PUT", &path, &answer)),
            }
        }
    }

    /// The manifest or index under `reference` (a tag or a digest), as
    /// `(media type, bytes)`; `None` when the registry has none (`404`).
    pub fn get_manifest(&self, reference: &str) -> Result<Option<(String, Vec<u8>)>, Error> {
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let accept = [("accept", MANIFEST_TYPES.to_owned())];
        let answer = self.send_reading(
            Method::Get,
            &self.authority,
            &path,
            &accept,
            Body::None,
            MAX_MANIFEST + 1,
        )?;
        match answer.status {
            200 if answer.body.len() as u64 > MAX_MANIFEST => Err(Error::Network(format!(
                "registry {}: GET {path}: the manifest is larger than {MAX_MANIFEST} bytes",
                self.authority
            ))),
            200 => {
                let declared = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
                let media_type = declared
                    .or(answer.content_type)
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                Ok(Some((media_type, answer.body)))
            }
            404 => Ok(None),
            _ => Err(self.refused("GET", &path, &answer)),
        }
    }

    /// Writes blob `digest` into `file` from offset 0, the host splicing
    /// the response body into it (redirects followed); the bytes written.
    /// The caller's host checks them against the digest.
    pub fn get_blob_to_file(&self, digest: &str, file: &File) -> Result<u64, Error> {
        let mut target = (
            self.authority.clone(),
            format!("/v2/{}/blobs/{digest}", self.repository),
        );
        for _ in 0..=MAX_REDIRECTS {
            let (authority, path) = &target;
            let response =
                send_request(Method::Get, self.insecure, authority, path, &[], Body::None)
                    .map_err(|e| {
                        e.into_error(|what| {
                            Error::Network(format!("registry {authority}: GET {path}: {what}"))
                        })
                    })?;
            let status = response.status();
            if status == 200 {
                return body_to_file(response, file, |what| {
                    Error::Network(format!("registry {authority}: GET {path}: {what}"))
                });
            }
            let answer = read_answer(response, MAX_ANSWER).map_err(|what| {
                Error::Network(format!("registry {authority}: GET {path}: {what}"))
            })?;
            match (status, &answer.location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    target = split_location(location, authority);
                }
                _ => return Err(self.refused("GET", path, &answer)),
            }
        }
        Err(Error::Network(format!(
            "registry {}: GET blob {digest}: more than {MAX_REDIRECTS} redirects",
            self.authority
        )))
    }

    /// One request; waits for the answer and reads a small body.
    fn send(
        &self,
        method: Method,
        authority: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Answer, Error> {
        self.send_reading(method, authority, path, headers, body, MAX_ANSWER)
    }

    /// One request; waits for the answer and reads its body up to `limit`
    /// bytes.
    fn send_reading(
        &self,
        method: Method,
        authority: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
        limit: u64,
    ) -> Result<Answer, Error> {
        let name = method_name(&method);
        let fail = |what: Transport| {
            Error::Network(format!("registry {authority}: {name} {path}: {what}"))
        };
        let response = send_request(
            method.clone(),
            self.insecure,
            authority,
            path,
            headers,
            body,
        )
        .map_err(|e| e.into_error(fail))?;
        read_answer(response, limit).map_err(fail)
    }

    /// The error for an unexpected answer: status and the registry's own
    /// message.
    fn refused(&self, method: &str, path: &str, answer: &Answer) -> Error {
        Error::Network(format!(
            "registry {} refused {method} {path}: {} {}{}",
            self.authority,
            answer.status,
            reason(answer.status),
            registry_message(&answer.body)
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ))
    }
}

/// `(authority, path?query)` of an upload `Location`: absolute, or relative
/// to `registry`.
fn split_location(location: &str, registry: &str) -> (String, String) {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
                None => (rest.to_owned(), "/".to_owned()),
            };
        }
    }
    (registry.to_owned(), location.to_owned())
}

/// The registry's error message: `code message (detail)` of each entry of
/// its JSON `errors`, else the first line of a text answer.
fn registry_message(body: &[u8]) -> Option<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let line: String = text.lines().next()?.trim().chars().take(200).collect();
        return (!line.is_empty()).then_some(line);
    };
    let messages: Vec<String> = value
        .get("errors")?
        .as_array()?
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            let detail = match e.get("detail") {
                Some(serde_json::Value::String(d)) => format!(" ({d})"),
                Some(d @ serde_json::Value::Object(_)) => format!(" ({d})"),
                _ => String::new(),
            };
            format!("{code} {message}{detail}").trim().to_owned()
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}
