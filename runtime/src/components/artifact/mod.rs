//! Components stored in a registry as OCI artifacts, in the CNCF Wasm OCI
//! artifact layout (the one `wkg oci push` writes): an OCI image manifest
//! ([`MANIFEST_MEDIA_TYPE`]) whose config has media type
//! [`CONFIG_MEDIA_TYPE`] and whose only layer, of media type
//! [`LAYER_MEDIA_TYPE`], is the component's bytes.
//!
//! The host pulls (`--output type=wasm,ref=HOST[:PORT]/REPO:TAG`) and pushes
//! (`outport exporter push`) them itself, through the same client as a
//! guest's `wasi:http` ([`HttpAccess`](crate::host::http::HttpAccess)):
//! only the reference's registry may be reached, with the docker config's
//! credentials and bearer tokens. A pulled layer is checked against its
//! digest as it downloads and kept in a cache directory by digest, so a
//! later run asks the registry for the manifest only.
//!
//! The files: `reference.rs` (parsing `HOST[:PORT]/REPO:TAG`), `format.rs`
//! (the manifest and config), `client.rs` (requests to the registry),
//! `pull.rs` and `push.rs`, and `store.rs` (the pulled-components cache).

mod client;
mod format;
mod pull;
mod push;
mod reference;
mod store;
#[cfg(test)]
mod tests;

use outport_oci::media;

use crate::run::reporter::{LogLevel, Reporter};

pub use client::Client;
pub use reference::{Reference, Target};
pub use store::cache_dir;

/// The media type of the artifact's manifest (an OCI image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = media::OCI_MANIFEST;
/// The media type of the artifact's config (CNCF Wasm OCI artifact).
pub const CONFIG_MEDIA_TYPE: &str = media::WASM_CONFIG;
/// The media type of the artifact's one layer: the component itself.
pub const LAYER_MEDIA_TYPE: &str = media::WASM_LAYER;

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

/// Runs `future` to completion on a runtime of its own, on a thread of its
/// own, so synchronous code can pull whether or not it runs inside a
/// runtime.
pub fn block_on<T: Send>(
    future: impl std::future::Future<Output = T> + Send,
) -> Result<T, std::io::Error> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(future))
                    .map_err(|e| std::io::Error::other(format!("cannot start a runtime: {e}")))
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the pulling thread panicked")))
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
