//! `docker://REFERENCE`: an image pulled from a registry by the host.
//!
//! The reference is normalised as docker does (`alpine` →
//! `docker.io/library/alpine:latest`). The host asks for the tag (or
//! digest) with the Accept headers of OCI and docker schema 2 manifests and
//! lists, then every manifest of an index (and of the indexes it lists, to
//! [`MAX_NESTING`] levels), then each manifest's config,
//! each checked against its digest and size as it downloads, into the
//! content-addressed blob store ([`super::blob_store`]) under the cache
//! directory: a blob already there is not downloaded again. The image is
//! then read from the store as an OCI layout, with every check an OCI layout
//! gets, so that an export from `docker://` and from a layout of the same
//! image are the same bytes. Layers are downloaded only when an instance
//! first reads one ([`super::download`]): a `docker` output choosing one
//! platform of an index downloads that platform's layers only.
//!
//! Trust is a push's: the host talks only to the registry of the reference
//! (and the token realm its challenge names), with the docker config's
//! credentials, which no component sees; a blob download may follow a
//! redirect to another host, which gets no credential; a manifest's
//! redirect is not followed. Plain HTTP only with `--src-insecure`.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use http::Method;
use outport_image::Image;
use outport_oci::{Reference, Sha256Digest, media};
use serde_json::Value;

use super::blob_store::BlobStore;
use super::download::{PARALLEL, RegistryFetch, download};
use super::error::PullError;
use super::remote::{Remote, digest_of};
use crate::host::http::HttpAccess;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::Silent;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

/// Levels of indexes read, the root's included: an index may list indexes
/// to this depth (the build-info rewrite goes as deep).
const MAX_NESTING: usize = 8;

/// Where and how to pull from.
pub struct Pull<'a> {
    /// The reference, as after `docker://`.
    pub reference: &'a str,
    /// Plain HTTP (`--src-insecure`).
    pub insecure: bool,
    /// The blob store's directory; `None`: a store of this run alone.
    pub store: Option<&'a Path>,
}

/// A pulled image: the image, read from the store, and what the run used
/// of the store (kept when it is pruned).
pub struct Pulled {
    /// The image.
    pub image: Image,
    /// The store.
    pub store: BlobStore,
    /// The hex digests of every blob the image names.
    pub used: HashSet<String>,
}

/// Pulls the image's documents (blocking: call it off the async threads,
/// inside the runtime) and reads it from the blob store; `display` names
/// the input. Its layers are fetched when first read.
pub fn open(pull: &Pull<'_>, display: &str) -> Result<Pulled, super::InputError> {
    let handle = tokio::runtime::Handle::current();
    let store = BlobStore::open(pull.store).map_err(PullError::from)?;
    // No prune between storing the documents and reading them.
    let lock = store.lock_shared().map_err(PullError::from)?;
    let remote = Arc::new(remote(pull, display)?);
    let (root, media_type, size, used) = handle.block_on(fetch(&remote, pull, display, &store))?;
    let fetch = Arc::new(RegistryFetch {
        remote,
        store: store.clone(),
        runtime: handle,
        permits: Arc::new(tokio::sync::Semaphore::new(PARALLEL)),
    });
    let image = store
        .open_image(&root, &media_type, size, display, fetch)
        .map_err(PullError::from)?;
    drop(lock);
    Ok(Pulled { image, store, used })
}

/// The registry repository of the reference, with the host's access.
fn remote(pull: &Pull<'_>, display: &str) -> Result<Remote, PullError> {
    let reference = parse(pull.reference, display)?;
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
    Ok(Remote {
        access,
        base: format!("{scheme}://{registry}"),
        registry,
        repository: reference.path().to_owned(),
        insecure: pull.insecure,
    })
}

/// The reference, normalised, with docker's default tag.
pub(crate) fn parse(reference: &str, display: &str) -> Result<Reference, PullError> {
    Ok(Reference::parse(reference)
        .map_err(|source| PullError::Reference {
            input: display.to_owned(),
            source,
        })?
        .with_default_tag())
}

/// Fetches every index, manifest and config of the image into `store`:
/// the root's digest, media type and size, and the hex digest of every
/// blob named (layers too, which stay where they are until read).
async fn fetch(
    remote: &Arc<Remote>,
    pull: &Pull<'_>,
    display: &str,
    store: &BlobStore,
) -> Result<(Sha256Digest, String, u64, HashSet<String>), PullError> {
    let reference = parse(pull.reference, display)?;
    let target = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let (bytes, media_type) = remote.manifest(&target, reference.digest()).await?;
    let root = digest_of(&bytes);
    let size = bytes.len() as u64;
    store.put(&root, &bytes)?;
    let mut used = HashSet::from([root.hex().to_owned()]);
    let mut manifests = Vec::new();
    // Indexes in indexes, breadth first, to MAX_NESTING levels.
    let mut pending = VecDeque::from([(bytes, media_type.clone(), root.clone(), 0)]);
    while let Some((bytes, media_type, digest, depth)) = pending.pop_front() {
        if !media::INDEXES.contains(&media_type.as_str()) {
            manifests.push(bytes);
            continue;
        }
        if depth >= MAX_NESTING {
            return Err(remote.error(
                Method::GET,
                &remote.full(&format!("manifests/{digest}")),
                &format!("indexes nest deeper than {MAX_NESTING} levels"),
            ));
        }
        for (child, _) in children(&bytes, "manifests") {
            if !used.insert(child.hex().to_owned()) {
                continue; // listed twice
            }
            let (child_bytes, child_type) = remote.manifest(child.as_str(), Some(&child)).await?;
            store.put(&child, &child_bytes)?;
            pending.push_back((child_bytes, child_type, child, depth + 1));
        }
    }
    let mut configs = Vec::new();
    for manifest in &manifests {
        configs.extend(children(manifest, "config"));
        for (layer, size) in children(manifest, "layers") {
            // Marks a stored layer used, for the store's pruning.
            store.has(&layer, size);
            used.insert(layer.hex().to_owned());
        }
    }
    download_all(remote, configs, store, &mut used).await?;
    Ok((root, media_type, size, used))
}

/// Downloads each of `blobs` the store lacks, [`PARALLEL`] at once.
async fn download_all(
    remote: &Arc<Remote>,
    blobs: Vec<(Sha256Digest, u64)>,
    store: &BlobStore,
    used: &mut HashSet<String>,
) -> Result<(), PullError> {
    let mut wanted: Vec<(Sha256Digest, u64)> = Vec::new();
    for blob in blobs {
        used.insert(blob.0.hex().to_owned());
        if !wanted.iter().any(|(d, _)| *d == blob.0) && !store.has(&blob.0, blob.1) {
            wanted.push(blob);
        }
    }
    for chunk in wanted.chunks(PARALLEL) {
        let mut tasks = tokio::task::JoinSet::new();
        for (digest, size) in chunk.iter().cloned() {
            let remote = Arc::clone(remote);
            let store = store.clone();
            tasks.spawn(async move { download(&remote, &digest, size, &store).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| remote.error(Method::GET, "blobs", &e.to_string()))??;
        }
    }
    Ok(())
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
