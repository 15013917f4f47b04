//! Components stored in a registry as OCI artifacts, in the CNCF Wasm OCI
//! artifact layout (the one `wkg oci push` writes): an OCI image manifest
//! ([`MANIFEST_MEDIA_TYPE`]) whose config has media type
//! [`CONFIG_MEDIA_TYPE`] and whose only layer, of media type
//! [`LAYER_MEDIA_TYPE`], is the component's bytes.
//!
//! The host pulls (`--output type=wasm,ref=HOST[:PORT]/REPO:TAG`) and pushes
//! (`outport exporter push`) them itself, through the same client as a
//! guest's `wasi:http` ([`HttpAccess`]): only the reference's registry may
//! be reached, with the docker config's credentials and bearer tokens. A
//! pulled layer is checked against its digest as it downloads and kept in
//! a cache directory by digest, so a later run asks the registry for the
//! manifest only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wasmtime_wasi_http::WasiBody;

use crate::host::http::HttpAccess;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

/// The media type of the artifact's manifest (an OCI image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of the artifact's config (CNCF Wasm OCI artifact).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the artifact's one layer: the component itself.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";

/// Largest manifest, config or error answer read from a registry.
const SMALL_ANSWER_BYTES: usize = 4 << 20;
/// Largest component pulled.
const COMPONENT_BYTES: u64 = 256 << 20;

/// Why a reference could not be pulled or pushed. `Display` is one line
/// naming the reference.
#[derive(Debug, thiserror::Error)]
#[error("ref {reference}: {message}")]
pub struct ArtifactError {
    /// The reference as given.
    pub reference: String,
    /// What went wrong.
    pub message: String,
}

/// `HOST[:PORT]/REPO:TAG` or `HOST[:PORT]/REPO@sha256:HEX` (the registry
/// is always named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`.
    pub registry: String,
    /// The repository, e.g. `exporters/hello`.
    pub repository: String,
    /// A tag or a manifest digest.
    pub target: Target,
}

/// What a reference points at in its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A tag.
    Tag(String),
    /// A manifest digest (`sha256:…`).
    Digest(String),
}

impl Reference {
    /// Parses a reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Reference, ArtifactError> {
        let bad = |message: &str| ArtifactError {
            reference: text.to_string(),
            message: message.to_string(),
        };
        let (registry, rest) = text
            .split_once('/')
            .filter(|(host, _)| host.contains(['.', ':']) || *host == "localhost")
            .ok_or_else(|| bad("expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:DIGEST (the registry must be named)"))?;
        AllowList::parse(&[registry])
            .map_err(|_| bad(&format!("{registry:?} is not a registry host[:port]")))?;
        let (repository, target) = match rest.split_once('@') {
            Some((repo, digest)) => {
                if !is_sha256_digest(digest) {
                    return Err(bad(&format!("{digest:?} is not a sha256:HEX digest")));
                }
                (repo, Target::Digest(digest.to_string()))
            }
            None => match rest.rsplit_once(':') {
                Some((repo, tag)) => {
                    let valid = !tag.is_empty()
                        && tag.len() <= 128
                        && !tag.starts_with(['.', '-'])
                        && tag
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                    if !valid {
                        return Err(bad(&format!("{tag:?} is not a valid tag")));
                    }
                    (repo, Target::Tag(tag.to_string()))
                }
                None => return Err(bad("a tag (:TAG) or a digest (@sha256:…) is needed")),
            },
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|part| {
                part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !valid_repo {
            return Err(bad(&format!(
                "{repository:?} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')"
            )));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            target,
        })
    }

    /// The last part of the repository: the name a policy knows a pulled
    /// component by (`exporters/hello` → `hello`).
    pub fn name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    fn target_str(&self) -> &str {
        match &self.target {
            Target::Tag(t) | Target::Digest(t) => t,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = match self.target {
            Target::Tag(_) => ':',
            Target::Digest(_) => '@',
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry,
            self.repository,
            self.target_str()
        )
    }
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A descriptor in a manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// The parts of an OCI image manifest read and written here.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// The artifact's config, as the CNCF Wasm OCI artifact spec has it.
#[derive(Debug, Serialize)]
struct WasmConfig<'a> {
    architecture: &'static str,
    os: &'static str,
    #[serde(rename = "layerDigests")]
    layer_digests: [&'a str; 1],
    component: ComponentInfo<'a>,
}

/// The `component` part of the config: what the component exports and
/// imports (as `outport inspect` lists them).
#[derive(Debug, Serialize)]
struct ComponentInfo<'a> {
    exports: &'a [String],
    imports: &'a [String],
}

/// A component pulled from a registry (or found in the cache).
#[derive(Debug)]
pub struct Pulled {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// Their digest (the layer's).
    pub digest: String,
    /// Found in the cache: no blob was downloaded.
    pub cached: bool,
}

/// A client for one reference's registry.
pub struct Client {
    reference: Reference,
    base: String,
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
        let allowed = AllowList::parse(&[&reference.registry]).map_err(fail)?;
        let access = HttpAccess::new(id, allowed, credentials, &Limits::default(), reporter);
        let scheme = if insecure { "http" } else { "https" };
        Ok(Client {
            base: format!("{scheme}://{}", reference.registry),
            reference,
            access,
        })
    }

    fn error(&self, message: impl Into<String>) -> ArtifactError {
        ArtifactError {
            reference: self.reference.to_string(),
            message: message.into(),
        }
    }

    fn url(&self, kind: &str, target: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{target}",
            self.base, self.reference.repository
        )
    }

    /// Sends a request, body `body`, with `headers`.
    async fn send(
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
    async fn small_body(&self, response: Response<WasiBody>) -> Result<Bytes, ArtifactError> {
        let body = http_body_util::Limited::new(response.into_body(), SMALL_ANSWER_BYTES);
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| self.error(format!("reading the registry's answer: {e}")))
    }

    /// An error for an unexpected answer, with the registry's own message.
    async fn refused(&self, what: &str, response: Response<WasiBody>) -> ArtifactError {
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

    /// Pulls the component: its manifest, then its layer, unless the layer
    /// is already in `cache` (a directory, `None`: no cache). The layer is
    /// checked against its digest and size as it downloads; only a
    /// verified component is cached.
    pub async fn pull(&self, cache: Option<&Path>) -> Result<Pulled, ArtifactError> {
        let target = self.reference.target_str().to_string();
        let response = self
            .send(
                Method::GET,
                &self.url("manifests", &target),
                &[(ACCEPT, MANIFEST_MEDIA_TYPE)],
                None,
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.refused("manifest", response).await);
        }
        let bytes = self.small_body(response).await?;
        if let Target::Digest(asked) = &self.reference.target {
            let got = sha256(&bytes);
            if &got != asked {
                return Err(self.error(format!(
                    "the registry's manifest has digest {got}, not the one asked for"
                )));
            }
        }
        let layer = self.component_layer(&bytes)?;
        let cached_path = cache.map(|dir| cache_path(dir, &layer.digest));
        if let Some(path) = &cached_path
            && let Ok(bytes) = std::fs::read(path)
            && sha256(&bytes) == layer.digest
        {
            return Ok(Pulled {
                bytes,
                digest: layer.digest,
                cached: true,
            });
        }
        let bytes = self.download(&layer).await?;
        if let Some(path) = &cached_path {
            crate::atomic_write(path, &bytes)
                .map_err(|e| self.error(format!("caching in {}: {e}", path.display())))?;
        }
        Ok(Pulled {
            bytes,
            digest: layer.digest,
            cached: false,
        })
    }

    /// The component layer of a manifest, checked to be a Wasm artifact.
    fn component_layer(&self, manifest: &[u8]) -> Result<Descriptor, ArtifactError> {
        let manifest: Manifest = serde_json::from_slice(manifest)
            .map_err(|e| self.error(format!("not an OCI image manifest: {e}")))?;
        if manifest.config.media_type != CONFIG_MEDIA_TYPE {
            return Err(self.error(format!(
                "not a Wasm component artifact: config media type {:?}, expected {CONFIG_MEDIA_TYPE:?}",
                manifest.config.media_type
            )));
        }
        let layer = match manifest.layers.as_slice() {
            [layer] if layer.media_type == LAYER_MEDIA_TYPE => layer.clone(),
            _ => {
                return Err(self.error(format!(
                    "not a Wasm component artifact: expected exactly one layer of media type {LAYER_MEDIA_TYPE:?}"
                )));
            }
        };
        if !is_sha256_digest(&layer.digest) {
            return Err(self.error(format!(
                "layer digest {:?} is not a sha256 digest",
                layer.digest
            )));
        }
        if layer.size > COMPONENT_BYTES {
            return Err(self.error(format!(
                "the component is {} bytes, more than the {COMPONENT_BYTES} allowed",
                layer.size
            )));
        }
        Ok(layer)
    }

    /// Downloads `layer`, hashing as bytes arrive; refuses more bytes than
    /// its size, and bytes whose digest is not its digest.
    async fn download(&self, layer: &Descriptor) -> Result<Vec<u8>, ArtifactError> {
        let response = self
            .send(Method::GET, &self.url("blobs", &layer.digest), &[], None)
            .await?;
        if !response.status().is_success() {
            return Err(self
                .refused(&format!("blob {}", layer.digest), response)
                .await);
        }
        let mut body = response.into_body();
        let mut hasher = Sha256::new();
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| self.error(format!("downloading {}: {e}", layer.digest)))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() as u64 + data.len() as u64 > layer.size {
                    return Err(self.error(format!(
                        "blob {} is larger than the {} bytes its manifest says; refused",
                        layer.digest, layer.size
                    )));
                }
                hasher.update(&data);
                bytes.extend_from_slice(&data);
            }
        }
        let got = format!("sha256:{}", hex::encode(hasher.finalize()));
        if got != layer.digest || bytes.len() as u64 != layer.size {
            return Err(self.error(format!(
                "blob {} does not match its digest (its {} bytes hash to {got}); refused",
                layer.digest,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Pushes `component` (whose `exports` and `imports` go into the
    /// config) under the reference, which must be a tag; returns the
    /// manifest's digest.
    pub async fn push(
        &self,
        component: &[u8],
        exports: &[String],
        imports: &[String],
    ) -> Result<String, ArtifactError> {
        let Target::Tag(tag) = &self.reference.target else {
            return Err(self.error("push needs a tag (:TAG), not a digest"));
        };
        let layer_digest = sha256(component);
        let config = serde_json::to_vec(&WasmConfig {
            architecture: "wasm",
            os: "wasip2",
            layer_digests: [&layer_digest],
            component: ComponentInfo { exports, imports },
        })
        .map_err(|e| self.error(format!("config: {e}")))?;
        let config = self.upload_blob(CONFIG_MEDIA_TYPE, config).await?;
        let layer = self
            .upload_blob(LAYER_MEDIA_TYPE, component.to_vec())
            .await?;
        let manifest = serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
            config,
            layers: vec![layer],
        })
        .map_err(|e| self.error(format!("manifest: {e}")))?;
        let digest = sha256(&manifest);
        let response = self
            .send(
                Method::PUT,
                &self.url("manifests", tag),
                &[(CONTENT_TYPE, MANIFEST_MEDIA_TYPE)],
                Some(Bytes::from(manifest)),
            )
            .await?;
        if !response.status().is_success() {
            return Err(self.refused("putting the manifest", response).await);
        }
        Ok(digest)
    }

    /// Uploads `bytes` as a blob unless the repository has it (one
    /// monolithic upload: `POST` then `PUT …?digest=`); its descriptor.
    async fn upload_blob(
        &self,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Descriptor, ArtifactError> {
        let descriptor = Descriptor {
            media_type: media_type.to_string(),
            digest: sha256(&bytes),
            size: bytes.len() as u64,
        };
        let digest = descriptor.digest.as_str();
        let head = self
            .send(Method::HEAD, &self.url("blobs", digest), &[], None)
            .await?;
        if head.status().is_success() {
            return Ok(descriptor);
        }
        let start = self
            .send(Method::POST, &self.url("blobs", "uploads/"), &[], None)
            .await?;
        if start.status() != StatusCode::ACCEPTED {
            return Err(self.refused("starting a blob upload", start).await);
        }
        let location = start
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.error("the registry started an upload without a Location"))?;
        let mut url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let done = self
            .send(
                Method::PUT,
                &url,
                &[(CONTENT_TYPE, "application/octet-stream")],
                Some(Bytes::from(bytes)),
            )
            .await?;
        if !done.status().is_success() {
            return Err(self
                .refused(&format!("uploading blob {digest}"), done)
                .await);
        }
        Ok(descriptor)
    }
}

/// Where the cache in `dir` keeps the component of layer `digest` (a
/// checked `sha256:HEX`).
fn cache_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    dir.join("sha256").join(format!("{hex}.wasm"))
}

/// The pulled-components cache under a compile cache directory.
pub fn cache_dir(compile_cache: &Path) -> PathBuf {
    compile_cache.join("pulled")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The first message of a registry's JSON error answer.
fn registry_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let first = value.get("errors")?.get(0)?;
    let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}").replace('\n', " "))
}

/// Runs `future` to completion on a runtime of its own, on a thread of its
/// own, so synchronous code can pull whether or not it runs inside a
/// runtime.
pub fn block_on<T: Send>(future: impl std::future::Future<Output = T> + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(future))
                    .map_err(|e| format!("cannot start a runtime: {e}"))
            })
            .join()
            .unwrap_or_else(|_| Err("the pulling thread panicked".to_string()))
    })
}

/// Logs where a pulled component came from, as instance `id`.
pub fn log_pulled(reporter: &dyn Reporter, id: &str, reference: &Reference, pulled: &Pulled) {
    let message = if pulled.cached {
        format!(
            "component {} of {reference} from the cache (no download)",
            pulled.digest
        )
    } else {
        format!(
            "pulled component {} of {reference} ({} bytes)",
            pulled.digest,
            pulled.bytes.len()
        )
    };
    reporter.log(id, LogLevel::Info, &message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/exporters/hello:1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "exporters/hello");
        assert_eq!(r.target, Target::Tag("1.0".into()));
        assert_eq!(r.name(), "hello");
        assert_eq!(r.to_string(), "127.0.0.1:5000/exporters/hello:1.0");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{digest}")).unwrap();
        assert_eq!(r.target, Target::Digest(digest.clone()));
        assert_eq!(r.to_string(), format!("localhost/x@{digest}"));
        for bad in [
            "hello:1.0",
            "exporters/hello:1.0",
            "127.0.0.1:5000/hello",
            "127.0.0.1:5000/Hello:1",
            "127.0.0.1:5000/hello:",
            "127.0.0.1:5000/hello@sha256:abc",
            "127.0.0.1:5000/hello:a/b",
            "bad host:1/x:1",
        ] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("ref {bad}: ")) && !e.contains('\n'),
                "{e}"
            );
        }
    }

    #[test]
    fn cache_paths_stay_in_the_cache() {
        let dir = Path::new("/c");
        let digest = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            cache_path(dir, &digest),
            PathBuf::from(format!("/c/sha256/{}.wasm", "b".repeat(64)))
        );
        assert!(!is_sha256_digest("sha256:../../x"));
        assert!(!is_sha256_digest(&format!("sha256:{}", "B".repeat(64))));
    }

    #[test]
    fn registry_error_answers() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            registry_message(body).as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(registry_message(b"<html>"), None);
    }
}
