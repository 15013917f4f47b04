//! `docker://REFERENCE`: an image pulled from a registry by the host.
//!
//! The reference is normalised as docker does (`alpine` →
//! `docker.io/library/alpine:latest`). The host asks for the tag (or
//! digest) with the Accept headers of OCI and docker schema 2 manifests and
//! lists, then every manifest of an index, then each manifest's config and
//! layers, each checked against its digest and size as it downloads, into
//! the content-addressed blob store ([`super::blob_store`]) under the cache
//! directory: a blob already there is not downloaded again. The image is
//! then read from the store as an OCI layout, with every check an OCI layout
//! gets, so that an export from `docker://` and from a layout of the same
//! image are the same bytes.
//!
//! Trust is a push's: the host talks only to the registry of the reference
//! (and the token realm its challenge names), with the docker config's
//! credentials, which no component sees; a redirect is not followed (a
//! blob served from another host is an error naming it). Plain HTTP only
//! with `--src-insecure`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use outport_image::Image;
use outport_oci::{Reference, Sha256Digest, media};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wasmtime_wasi_http::WasiBody;

use super::blob_store::{BlobStore, StoreError};
use crate::host::http::HttpAccess;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::Silent;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

/// Largest manifest or index read (distribution's own limit).
const MAX_MANIFEST: usize = 4 << 20;
/// Largest error answer read.
const MAX_ERROR: usize = 64 << 10;
/// Blobs downloaded at once from one registry.
const PARALLEL: usize = 4;

/// Why an image could not be pulled. One line naming the registry, the
/// request and the answer.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The reference is not one.
    #[error("input {input:?}: {source}")]
    Reference {
        /// The argument.
        input: String,
        /// Why.
        #[source]
        source: outport_oci::reference::ReferenceError,
    },
    /// The docker config could not be read.
    #[error("input {input:?}: {source}")]
    Credentials {
        /// The argument.
        input: String,
        /// Why.
        #[source]
        source: crate::outbound::docker_config::CredentialsError,
    },
    /// A request failed or was answered wrongly.
    #[error("registry {registry}: {method} {path}: {message}")]
    Request {
        /// `host[:port]`.
        registry: String,
        /// The method.
        method: Method,
        /// The path asked for.
        path: String,
        /// The answer, or what went wrong.
        message: String,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where and how to pull from.
pub struct Pull<'a> {
    /// The reference, as after `docker://`.
    pub reference: &'a str,
    /// Plain HTTP (`--src-insecure`).
    pub insecure: bool,
    /// The blob store's directory.
    pub store: &'a Path,
}

/// Pulls the image (blocking: call it off the async threads, inside the
/// runtime) and reads it from the blob store; `display` names the input.
pub fn open(pull: &Pull<'_>, display: &str) -> Result<Image, super::InputError> {
    let handle = tokio::runtime::Handle::current();
    let store = BlobStore::open(pull.store).map_err(PullError::from)?;
    let (root, media_type, size) = handle.block_on(fetch(pull, display, &store))?;
    let image = store
        .open_image(&root, &media_type, size, display)
        .map_err(PullError::from)?;
    Ok(image)
}

/// One registry repository and the host's access to it.
struct Remote {
    access: HttpAccess,
    base: String,
    registry: String,
    repository: String,
}

/// Fetches every document and blob of the image into `store`: the root's
/// digest, media type and size.
async fn fetch(
    pull: &Pull<'_>,
    display: &str,
    store: &BlobStore,
) -> Result<(Sha256Digest, String, u64), PullError> {
    let reference = Reference::parse(pull.reference)
        .map_err(|source| PullError::Reference {
            input: display.to_owned(),
            source,
        })?
        .with_default_tag();
    let registry = reference.registry().to_owned();
    let credentials = Credentials::load().map_err(|source| PullError::Credentials {
        input: display.to_owned(),
        source,
    })?;
    let allowed = AllowList::parse(&[&registry]).map_err(|e| PullError::Request {
        registry: registry.clone(),
        method: Method::GET,
        path: String::new(),
        message: e.to_string(),
    })?;
    let access = HttpAccess::new(
        "input",
        allowed,
        credentials,
        &Limits::default(),
        Arc::new(Silent),
    );
    let scheme = if pull.insecure { "http" } else { "https" };
    let remote = Remote {
        access,
        base: format!("{scheme}://{registry}"),
        registry,
        repository: reference.path().to_owned(),
    };
    let target = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let (bytes, media_type) = remote.manifest(&target, reference.digest()).await?;
    let root = digest_of(&bytes);
    let size = bytes.len() as u64;
    store.put(&root, &bytes)?;
    let mut blobs = Vec::new();
    if media::INDEXES.contains(&media_type.as_str()) {
        for child in children(&bytes, "manifests") {
            let (digest, _) = child;
            let (child_bytes, child_type) = remote.manifest(digest.as_str(), Some(&digest)).await?;
            store.put(&digest, &child_bytes)?;
            if media::INDEXES.contains(&child_type.as_str()) {
                return Err(remote.error(
                    Method::GET,
                    digest.as_str(),
                    "an index inside an index is not read",
                ));
            }
            blobs.extend(manifest_blobs(&child_bytes));
        }
    } else {
        blobs.extend(manifest_blobs(&bytes));
    }
    download_all(Arc::new(remote), blobs, store).await?;
    Ok((root, media_type, size))
}

/// Downloads each of `blobs` the store lacks, [`PARALLEL`] at once.
async fn download_all(
    remote: Arc<Remote>,
    blobs: Vec<(Sha256Digest, u64)>,
    store: &BlobStore,
) -> Result<(), PullError> {
    let mut wanted: Vec<(Sha256Digest, u64)> = Vec::new();
    for blob in blobs {
        if !wanted.iter().any(|(d, _)| *d == blob.0) && !store.has(&blob.0, blob.1) {
            wanted.push(blob);
        }
    }
    for chunk in wanted.chunks(PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for (digest, size) in chunk.iter().cloned() {
            let remote = remote.clone();
            let store = store.clone();
            tasks.spawn(async move { remote.blob(&digest, size, &store).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| remote.error(Method::GET, "blobs", &e.to_string()))??;
        }
    }
    Ok(())
}

/// The sha256 digest of `bytes`.
fn digest_of(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest::from_hash(Sha256::digest(bytes).into())
}

/// `(digest, size)` of each entry of the JSON list `key` of `document`.
fn children(document: &[u8], key: &str) -> Vec<(Sha256Digest, u64)> {
    let Ok(value) = serde_json::from_slice::<Value>(document) else {
        return Vec::new();
    };
    let list = match value.get(key) {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    list.iter()
        .filter_map(|d| {
            let digest = Sha256Digest::parse(d.get("digest")?.as_str()?).ok()?;
            Some((digest, d.get("size")?.as_u64()?))
        })
        .collect()
}

/// The config and layers of an image manifest.
fn manifest_blobs(manifest: &[u8]) -> Vec<(Sha256Digest, u64)> {
    let mut blobs = children(manifest, "config");
    blobs.extend(children(manifest, "layers"));
    blobs
}

impl Remote {
    fn error(&self, method: Method, path: &str, message: &str) -> PullError {
        PullError::Request {
            registry: self.registry.clone(),
            method,
            path: path.to_owned(),
            message: message.replace('\n', " "),
        }
    }

    /// Sends a `GET` of `path` (under the repository) with `accept`.
    async fn get(&self, path: &str, accept: Option<&str>) -> Result<Response<WasiBody>, PullError> {
        let full = format!("/v2/{}/{path}", self.repository);
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{full}", self.base))
            .header(HOST, &self.registry);
        if let Some(accept) = accept {
            builder = builder.header(ACCEPT, accept);
        }
        let body: WasiBody = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = builder
            .body(body)
            .map_err(|e| self.error(Method::GET, &full, &e.to_string()))?;
        let response = self.access.send_own(request).await.map_err(|e| {
            let detail = self.access.problem().unwrap_or_else(|| e.to_string());
            let hint = if self.base.starts_with("https:") && detail.contains("TLS") {
                " (a registry that speaks plain HTTP needs --src-insecure)"
            } else {
                ""
            };
            self.error(Method::GET, &full, &format!("{detail}{hint}"))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
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
            (s, Some(to)) if s.is_redirection() => {
                format!("answered {s}, a redirect to {to}, which is not followed")
            }
            (StatusCode::UNAUTHORIZED, _) => format!(
                "answered {status}{}",
                self.access
                    .problem()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
            _ => format!("answered {status}{}", registry_message(&body)),
        };
        Err(self.error(Method::GET, &full, &message))
    }

    /// The manifest or index under `target` (a tag or digest), checked
    /// against `digest` when given: its bytes and media type.
    async fn manifest(
        &self,
        target: &str,
        digest: Option<&Sha256Digest>,
    ) -> Result<(Vec<u8>, String), PullError> {
        let path = format!("manifests/{target}");
        let full = format!("/v2/{}/{path}", self.repository);
        let response = self.get(&path, Some(media::ACCEPT_MANIFESTS)).await?;
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
        let declared = value.get("mediaType").and_then(Value::as_str);
        let media_type = declared
            .map(str::to_owned)
            .or(content_type)
            .unwrap_or_default();
        if value.get("schemaVersion").and_then(Value::as_u64) == Some(1)
            || media_type.starts_with("application/vnd.docker.distribution.manifest.v1")
        {
            return Err(self.error(
                Method::GET,
                &full,
                "answered a docker schema 1 manifest, which is not read (push the image again with a current client)",
            ));
        }
        let known = media::INDEXES.contains(&media_type.as_str())
            || media::MANIFESTS.contains(&media_type.as_str());
        if !known {
            return Err(self.error(
                Method::GET,
                &full,
                &format!(
                    "answered a document of media type {media_type:?}, not a manifest or index"
                ),
            ));
        }
        Ok((bytes, media_type))
    }

    /// Downloads blob `digest` of `size` bytes into `store`, hashing as it
    /// streams; refuses more bytes than its size and bytes of another
    /// digest.
    async fn blob(
        &self,
        digest: &Sha256Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<(), PullError> {
        let path = format!("blobs/{digest}");
        let full = format!("/v2/{}/{path}", self.repository);
        let response = self.get(&path, None).await?;
        let mut body = response.into_body();
        let mut file = store.temp()?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                self.error(
                    Method::GET,
                    &full,
                    &format!("the download broke after {got} of {size} bytes: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            got += data.len() as u64;
            if got > size {
                return Err(self.error(
                    Method::GET,
                    &full,
                    &format!("answered more than the {size} bytes of the blob"),
                ));
            }
            hasher.update(&data);
            file.write(&data)?;
        }
        let actual = Sha256Digest::from_hash(hasher.finalize().into());
        if got != size || actual != *digest {
            return Err(self.error(
                Method::GET,
                &full,
                &format!(
                    "answered {got} bytes whose digest is {actual}, not the blob's {size} bytes of {digest}"
                ),
            ));
        }
        Ok(file.keep(digest)?)
    }
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
