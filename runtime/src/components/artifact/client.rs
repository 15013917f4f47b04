//! The client: requests to one reference's registry, through the host's
//! HTTP access, and its error answers.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use wasmtime_wasi_http::WasiBody;

use super::{ArtifactError, Reference, SMALL_ANSWER_BYTES};
use crate::host::http::HttpAccess;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::Reporter;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

/// A client for one reference's registry.
pub struct Client {
    pub(super) reference: Reference,
    pub(super) base: String,
    access: HttpAccess,
}

impl Client {
    /// A client for `reference`'s registry, over plain HTTP when
    /// `insecure`, with the user's docker credentials; `id` names who asks
    /// in `reporter`'s log lines.
    pub fn new(
        reference: Reference,
        insecure: bool,
        id: &str,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Client, ArtifactError> {
        let fail = |message: String| ArtifactError {
            reference: reference.to_string(),
            message,
        };
        let credentials = Credentials::load().map_err(|e| fail(e.to_string()))?;
        let allowed = AllowList::parse(&[&reference.registry]).map_err(|e| fail(e.to_string()))?;
        let access = HttpAccess::new(id, allowed, credentials, &Limits::default(), reporter);
        let scheme = if insecure { "http" } else { "https" };
        Ok(Client {
            base: format!("{scheme}://{}", reference.registry),
            reference,
            access,
        })
    }

    pub(super) fn error(&self, message: impl Into<String>) -> ArtifactError {
        ArtifactError {
            reference: self.reference.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn url(&self, kind: &str, target: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{target}",
            self.base, self.reference.repository
        )
    }

    /// Sends a request, body `body`, with `headers`.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, &str)],
        body: Option<Bytes>,
    ) -> Result<Response<WasiBody>, ArtifactError> {
        // The client sends the path only: the host goes in `Host`.
        let host = http::Uri::try_from(url)
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| self.reference.registry.clone());
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(HOST, host);
        for (name, value) in headers {
            builder = builder.header(name, *value);
        }
        let body: WasiBody = match body {
            Some(bytes) => {
                builder = builder.header(CONTENT_LENGTH, bytes.len());
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            }
            None => {
                if method != Method::GET && method != Method::HEAD {
                    builder = builder.header(CONTENT_LENGTH, 0);
                }
                Empty::new().map_err(|never| match never {}).boxed_unsync()
            }
        };
        let request = builder
            .body(body)
            .map_err(|e| self.error(format!("{method} {url}: {e}")))?;
        self.access.send_own(request).await.map_err(|e| {
            let detail = self.access.problem().unwrap_or_else(|| e.to_string());
            self.error(format!("{method} {url} failed: {detail}"))
        })
    }

    /// The body of a small answer.
    pub(super) async fn small_body(
        &self,
        response: Response<WasiBody>,
    ) -> Result<Bytes, ArtifactError> {
        let body = http_body_util::Limited::new(response.into_body(), SMALL_ANSWER_BYTES);
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| self.error(format!("reading the registry's answer: {e}")))
    }

    /// An error for an unexpected answer, with the registry's own message.
    pub(super) async fn refused(&self, what: &str, response: Response<WasiBody>) -> ArtifactError {
        let status = response.status();
        let detail = self
            .small_body(response)
            .await
            .ok()
            .and_then(|b| registry_message(&b))
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let hint = if status == StatusCode::NOT_FOUND {
            ": not found in the registry"
        } else {
            ""
        };
        self.error(format!(
            "{what}: the registry answered {status}{hint}{detail}"
        ))
    }
}

/// The first message of a registry's JSON error answer.
pub(super) fn registry_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = value.get("errors")?.get(0)?;
    let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}").replace('\n', " "))
}
