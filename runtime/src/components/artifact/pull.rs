//! Pulling: the manifest, then the component layer unless the cache has
//! it, checked against its digest and size as it downloads.

use std::path::Path;

use http::Method;
use http::header::ACCEPT;
use http_body_util::BodyExt;
use sha2::{Digest as _, Sha256};

use super::client::Client;
use outport_oci::Sha256Digest;
use outport_oci::digest::is_sha256;

use super::format::{Descriptor, Manifest, sha256};
use super::store::cache_path;
use super::{
    ArtifactError, COMPONENT_BYTES, CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
    Pulled, Target,
};

impl Client {
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
            crate::output::atomic::write_file(path, &bytes)
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
        if !is_sha256(&layer.digest) {
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
        let got = Sha256Digest::from_hash(hasher.finalize().into()).into_string();
        if got != layer.digest || bytes.len() as u64 != layer.size {
            return Err(self.error(format!(
                "blob {} does not match its digest (its {} bytes hash to {got}); refused",
                layer.digest,
                bytes.len()
            )));
        }
        Ok(bytes)
    }
}
