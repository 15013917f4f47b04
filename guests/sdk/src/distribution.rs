//! A small OCI distribution (registry v2) push client over `wasi:http`.
//!
//! [`Registry::push`] uploads a [`Plan`](crate::Plan) to one repository:
//! every blob the registry lacks (`HEAD` first; present ones are skipped),
//! then the manifests and the index, children first (the plan's walk
//! order, reversed), each after the blobs it names. Layer bytes go from the host into the
//! request body (`blob.copy-to-stream` on the body's output-stream): they
//! never enter guest memory. Uploads are monolithic (`POST` then `PUT` with
//! `Content-Length`). Credentials are the host's business: it adds them to
//! the requests; the component never sees them.
//!
//! Needs the `networked-exporter` world and a host that allows the
//! registry.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use crate::dest::write_all;
use crate::{Blob, Error, Plan, media};

/// Largest response body read (registry errors, small JSON).
const MAX_ANSWER: u64 = 64 << 10;

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
    /// Manifests and indexes put.
    pub manifests: usize,
}

/// A registry's answer: status, headers we use, body (truncated).
pub(crate) struct Answer {
    pub(crate) status: u16,
    location: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Registry {
    /// The repository of a normalised image name (`127.0.0.1:5000/app:1`,
    /// `docker.io/library/alpine:3`), with its tag if it has one.
    pub fn for_name(normalized: &str, insecure: bool) -> Result<(Registry, Option<String>), Error> {
        let without_digest = normalized.split('@').next().unwrap_or(normalized);
        let (repo, tag) = match crate::reference::split_tag(normalized) {
            Some((repo, tag)) => (repo, Some(tag.to_owned())),
            None => (without_digest, None),
        };
        let (domain, path) = repo
            .split_once('/')
            .ok_or_else(|| Error::InvalidOption(format!("name {normalized:?}: no repository")))?;
        let authority = match domain {
            "docker.io" => "registry-1.docker.io",
            other => other,
        };
        Ok((
            Registry {
                authority: authority.to_owned(),
                repository: path.to_owned(),
                insecure,
            },
            tag,
        ))
    }

    /// Pushes every blob of `plan`, then its manifests, then tags the root
    /// with `tag` (or puts it by digest when `tag` is `None`).
    pub fn push(&self, plan: &Plan, tag: Option<&str>) -> Result<PushStats, Error> {
        let mut stats = PushStats::default();
        let is_manifest =
            |media_type: &str| media::is_index(media_type) || media::is_manifest(media_type);
        // Blobs first (a layer may be shared by several manifests), then
        // manifests children first: the plan lists parents before children.
        for blob in &plan.blobs {
            let d = blob.descriptor();
            if is_manifest(&d.media_type) {
                continue;
            }
            if self.has_blob(&d.digest)? {
                stats.present += 1;
            } else {
                self.upload(blob, &d.digest, d.size)?;
                stats.uploaded += 1;
            }
        }
        for blob in plan.blobs.iter().rev() {
            let d = blob.descriptor();
            if !is_manifest(&d.media_type) {
                continue;
            }
            let reference = match tag {
                Some(tag) if d.digest == plan.root.digest => tag.to_owned(),
                _ => d.digest.clone(),
            };
            self.put_manifest(blob, &d.media_type, &reference)?;
            stats.manifests += 1;
        }
        Ok(stats)
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

    fn upload(&self, blob: &Blob, digest: &str, size: u64) -> Result<(), Error> {
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
        let location = started.location.clone().ok_or_else(|| {
            Error::Network(format!(
                "registry {}: POST {path}: 202 without a Location header",
                self.authority
            ))
        })?;
        let (authority, upload) = split_location(&location, &self.authority);
        let sep = if upload.contains('?') { '&' } else { '?' };
        let target = format!("{upload}{sep}digest={}", digest.replace(':', "%3A"));
        let answer = self.send(
            Method::Put,
            &authority,
            &target,
            &[
                ("content-type", "application/octet-stream".into()),
                ("content-length", size.to_string()),
            ],
            Body::Blob(blob),
        )?;
        match answer.status {
            201 | 204 => Ok(()),
            _ => Err(self.refused(
                "PUT",
                &format!("/v2/{}/blobs/uploads/…", self.repository),
                &answer,
            )),
        }
    }

    fn put_manifest(&self, blob: &Blob, media_type: &str, reference: &str) -> Result<(), Error> {
        let bytes = blob.bytes()?;
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
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
        match answer.status {
            200 | 201 | 204 => Ok(()),
            _ => Err(self.refused("PUT", &path, &answer)),
        }
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
        let name = method_name(&method);
        let fail =
            |what: String| Error::Network(format!("registry {authority}: {name} {path}: {what}"));
        let response = send_request(
            method.clone(),
            self.insecure,
            authority,
            path,
            headers,
            body,
        )
        .map_err(|e| match e {
            Ok(what) => fail(what),
            Err(e) => e,
        })?;
        read_answer(response).map_err(fail)
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

/// What a request carries.
pub(crate) enum Body<'a> {
    None,
    Bytes(&'a [u8]),
    /// Streamed by the host (`copy-to-stream`).
    Blob(&'a Blob),
}

/// Sends one request (`insecure`: plain HTTP) and waits for the answer's
/// head. Fails with `Ok(message)` for a request or transport problem, or
/// `Err(error)` for a failed body copy.
pub(crate) fn send_request(
    method: Method,
    insecure: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
) -> Result<IncomingResponse, Result<String, Error>> {
    let name = method_name(&method).to_owned();
    let (outgoing, pending) =
        open_request(method, insecure, authority, path, headers).map_err(Ok)?;
    {
        let stream = outgoing
            .write()
            .map_err(|()| Ok("no request body stream".to_owned()))?;
        match body {
            Body::None => {}
            Body::Bytes(bytes) => {
                write_all(&stream, bytes, &format!("{name} {path}")).map_err(Err)?
            }
            Body::Blob(blob) => {
                blob.copy_to_stream(&stream).map_err(Err)?;
            }
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| Ok(describe(&e)))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(Ok(describe(&e))),
        Some(Err(())) | None => Err(Ok("no response".into())),
    }
}

/// Starts one request (`insecure`: plain HTTP): the body to write, then
/// finish, and the answer to come.
pub(crate) fn open_request(
    method: Method,
    insecure: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(OutgoingBody, FutureIncomingResponse), String> {
    let fields = Fields::new();
    for (key, value) in headers {
        fields
            .append(key, value.as_bytes())
            .map_err(|e| format!("header {key}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if insecure {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let ok = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !ok {
        return Err("invalid request".into());
    }
    let outgoing = request.body().map_err(|()| "no request body".to_owned())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    Ok((outgoing, pending))
}

pub(crate) fn read_answer(response: IncomingResponse) -> Result<Answer, String> {
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok());
    let incoming = response
        .consume()
        .map_err(|()| "no response body".to_string())?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| "no response body stream".to_string())?;
        while (body.len() as u64) < MAX_ANSWER {
            match stream.blocking_read(MAX_ANSWER - body.len() as u64) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
    }
    drop(incoming);
    Ok(Answer {
        status,
        location,
        body,
    })
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

/// The reason phrase of the statuses a registry answers with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
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

pub(crate) fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other(m) => m,
    }
}

/// One line for a `wasi:http` error code.
pub(crate) fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => {
            "request denied by the host: the registry is not among the hosts this instance may reach (the policy's network-hosts)".to_owned()
        }
        ErrorCode::ConnectionRefused => "connection refused".to_owned(),
        ErrorCode::ConnectionTimeout => "connection timed out".to_owned(),
        ErrorCode::InternalError(Some(m)) => m.clone(),
        other => format!("{other:?}"),
    }
}
