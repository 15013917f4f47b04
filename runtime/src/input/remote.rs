//! One registry repository as the host reads it for a `docker://` input:
//! requests with the host's access (credentials, tokens, timeouts), the
//! manifests and indexes checked as they are read, and every failure as
//! one line naming the registry, the request and the answer.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use outport_oci::{Sha256Digest, media};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wasmtime_wasi_http::WasiBody;

use super::error::PullError;
use crate::host::http::HttpAccess;

/// Largest manifest or index read (distribution's own limit).
const MAX_MANIFEST: usize = 4 << 20;
/// Largest error answer read.
const MAX_ERROR: usize = 64 << 10;

/// One registry repository and the host's access to it.
pub(super) struct Remote {
    pub(super) access: HttpAccess,
    /// `https://host[:port]` (`http://` with `--src-insecure`).
    pub(super) base: String,
    /// `host[:port]`.
    pub(super) registry: String,
    pub(super) repository: String,
    /// Plain HTTP allowed (`--src-insecure`).
    pub(super) insecure: bool,
}

/// The sha256 digest of `bytes`.
pub(super) fn digest_of(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::from_hash(Sha256::digest(bytes).into())
}

impl Remote {
    pub(super) fn error(&self, method: Method, path: &str, message: &str) -> PullError {
        PullError::Request {
            registry: self.registry.clone(),
            method,
            path: path.to_owned(),
            message: crate::sandbox::text::one_line(message).into_owned(),
        }
    }

    /// The path of `rel` under the repository: `/v2/REPO/rel`.
    pub(super) fn full(&self, rel: &str) -> String {
        format!("/v2/{}/{rel}", self.repository)
    }

    /// Sends a `GET` of `url` with `access` and `headers`; `shown` is the
    /// request as errors name it. Any answer is returned.
    pub(super) async fn send(
        &self,
        access: &HttpAccess,
        url: &str,
        headers: HeaderMap,
        shown: &str,
    ) -> Result<Response<WasiBody>, PullError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| self.error(Method::GET, shown, &format!("{}: {e}", shown_url(url))))?;
        let authority = uri.authority().map(|a| a.as_str().to_owned());
        let mut builder = Request::builder().method(Method::GET).uri(uri);
        if let Some(authority) = authority {
            builder = builder.header(HOST, authority);
        }
        let body: WasiBody = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = builder
            .body(body)
            .map_err(|e| self.error(Method::GET, shown, &e.to_string()))?;
        request.headers_mut().extend(headers);
        access.send_own(request).await.map_err(|e| {
            let detail = access.problem().unwrap_or_else(|| e.to_string());
            let hint = if url.starts_with("https:") && detail.contains("TLS") {
                " (a registry that speaks plain HTTP needs --src-insecure)"
            } else {
                ""
            };
            self.error(Method::GET, shown, &format!("{detail}{hint}"))
        })
    }

    /// The error for an answer that is not a success, naming its status
    /// (and the registry's error code, or the redirect, or why a `401`).
    pub(super) async fn refused(
        &self,
        access: &HttpAccess,
        response: Response<WasiBody>,
        shown: &str,
        what: &str,
    ) -> PullError {
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_ERROR)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = match (status, location) {
            (s, Some(to)) if s.is_redirection() => format!(
                "{what}answered {s}, a redirect to {}, which is not followed (only blob downloads follow redirects)",
                shown_url(&to)
            ),
            (StatusCode::UNAUTHORIZED, _) => format!(
                "{what}answered {status}{}",
                access
                    .problem()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
            _ => format!("{what}answered {status}{}", registry_message(&body)),
        };
        self.error(Method::GET, shown, &message)
    }

    /// Sends a `GET` of `rel` (under the repository) with `accept`; an
    /// answer that is not a success is an error.
    async fn get(&self, rel: &str, accept: &str) -> Result<Response<WasiBody>, PullError> {
        let full = self.full(rel);
        let mut headers = HeaderMap::new();
        if let Ok(value) = accept.parse() {
            headers.insert(ACCEPT, value);
        }
        let url = format!("{}{full}", self.base);
        let response = self.send(&self.access, &url, headers, &full).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.refused(&self.access, response, &full, "").await)
    }

    /// The manifest or index under `target` (a tag or digest), checked
    /// against `digest` when given: its bytes and media type.
    pub(super) async fn manifest(
        &self,
        target: &str,
        digest: Option<&Sha256Digest>,
    ) -> Result<(Vec<u8>, String), PullError> {
        let path = format!("manifests/{target}");
        let full = self.full(&path);
        let response = self.get(&path, media::ACCEPT_MANIFESTS).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        let bytes = Limited::new(response.into_body(), MAX_MANIFEST)
            .collect()
            .await
            .map_err(|e| self.error(Method::GET, &full, &format!("reading the answer: {e}")))?
            .to_bytes()
            .to_vec();
        if let Some(digest) = digest
            && digest_of(&bytes) != *digest
        {
            return Err(self.error(
                Method::GET,
                &full,
                &format!(
                    "answered bytes whose digest is {}, not {digest}",
                    digest_of(&bytes)
                ),
            ));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.error(Method::GET, &full, &format!("not a manifest: {e}")))?;
        let media_type = value
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(content_type)
            .unwrap_or_default();
        self.check_manifest(&value, &media_type, &full)?;
        Ok((bytes, media_type))
    }

    /// Refuses schema 1 manifests and documents that are not a manifest or
    /// an index.
    fn check_manifest(&self, value: &Value, media_type: &str, full: &str) -> Result<(), PullError> {
        if value.get("schemaVersion").and_then(Value::as_u64) == Some(1)
            || media_type.starts_with("application/vnd.docker.distribution.manifest.v1")
        {
            return Err(self.error(
                Method::GET,
                full,
                "answered a docker schema 1 manifest, which is not read (push the image again with a current client)",
            ));
        }
        let known = media::INDEXES.contains(&media_type) || media::MANIFESTS.contains(&media_type);
        if !known {
            return Err(self.error(
                Method::GET,
                full,
                &format!(
                    "answered a document of media type {media_type:?}, not a manifest or index"
                ),
            ));
        }
        Ok(())
    }
}

/// A URL as messages show it: without its query (signed URLs carry
/// credentials there).
pub(super) fn shown_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `": CODE message"` of a registry's JSON error answer, if it is one.
fn registry_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let Some(first) = value.get("errors").and_then(|e| e.get(0)) else {
        return String::new();
    };
    let code = first.get("code").and_then(Value::as_str).unwrap_or("");
    let message = first.get("message").and_then(Value::as_str).unwrap_or("");
    crate::sandbox::text::one_line(&format!(": {code} {message}")).into_owned()
}
