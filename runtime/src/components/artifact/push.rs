//! Pushing (`outport exporter push`): the config and the component as
//! blobs, then the manifest under the tag.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};

use super::client::Client;
use super::format::{ComponentInfo, Descriptor, Manifest, WasmConfig, sha256};
use super::{ArtifactError, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, Target};

impl Client {
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
