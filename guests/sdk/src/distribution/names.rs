//! Pushing one plan to several names at once.
//!
//! [`Registry::push_names`] pushes to every name together: the first name
//! of each registry uploads the blobs that registry lacks (`HEAD`, then an
//! upload session), the uploads of every registry in flight at once
//! ([`PARALLEL_UPLOADS`] per registry); every other name of the same
//! registry then gets each blob by a cross-repository mount from the first
//! (`POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=FIRST`), one request
//! and no bytes. A registry that refuses a mount opens an upload session
//! instead (`202`), and the blob is uploaded there; one that does not know
//! the `mount` parameter is asked the usual way. When the runtime pulled the
//! input image from a registry (`image.source`), the first name of that
//! same registry mounts each blob it lacks from the input's repository the
//! same way, instead of uploading it. Manifests follow, children first,
//! then each name's tag.

use std::collections::BTreeSet;

use super::{PARALLEL_UPLOADS, PushStats, Registry};
use crate::bindings::outport::exporter::image;
use crate::bindings::wasi::http::types::Method;
use crate::http::Body;
use crate::transfer::{Upload, upload_all};
use crate::{Blob, Error, Plan, media};

/// One name to push to.
pub struct Target {
    /// Its repository.
    pub registry: Registry,
    /// Its tag; `None` puts the root by digest only.
    pub tag: Option<String>,
}

/// A blob upload and the target it is for.
type Pending<'a> = (usize, Upload<'a>);

impl Registry {
    /// Pushes `plan` to every target (see the module's documentation);
    /// what each push did, in the order of `targets`.
    pub fn push_names(plan: &Plan, targets: &[Target]) -> Result<Vec<PushStats>, Error> {
        let is_manifest =
            |media_type: &str| media::is_index(media_type) || media::is_manifest(media_type);
        let mut seen = BTreeSet::new();
        let blobs: Vec<&Blob> = plan
            .blobs
            .iter()
            .filter(|b| {
                let d = b.descriptor();
                !is_manifest(&d.media_type) && seen.insert(d.digest)
            })
            .collect();
        let mut stats = vec![PushStats::default(); targets.len()];
        let firsts = first_of_registry(targets);
        // The first name of each registry uploads what its registry lacks,
        // or mounts it from the input's repository.
        let source = input_source();
        let pending = first_names(targets, &firsts, &blobs, source.as_ref(), &mut stats)?;
        upload(targets, pending, &mut stats)?;
        // The others mount from it.
        let mut pending = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let first = &targets[firsts[i]].registry;
            if firsts[i] == i {
                continue;
            }
            for blob in &blobs {
                match target
                    .registry
                    .mount(&blob.descriptor().digest, first, blob)?
                {
                    Some(session) => pending.push((i, session)),
                    None => stats[i].mounted += 1,
                }
            }
        }
        upload(targets, pending, &mut stats)?;
        for (target, stats) in targets.iter().zip(&mut stats) {
            for blob in plan.blobs.iter().rev() {
                let d = blob.descriptor();
                if !is_manifest(&d.media_type) {
                    continue;
                }
                let reference = match &target.tag {
                    Some(tag) if d.digest == plan.root.digest => tag.clone(),
                    _ => d.digest.clone(),
                };
                target
                    .registry
                    .put_manifest(blob, &d.media_type, &reference)?;
                stats.manifests += 1;
            }
        }
        Ok(stats)
    }

    /// Mounts blob `digest` from `from`'s repository: `None` once mounted,
    /// else the upload the registry opened instead.
    fn mount<'a>(
        &self,
        digest: &str,
        from: &Registry,
        blob: &'a Blob,
    ) -> Result<Option<Upload<'a>>, Error> {
        let path = format!(
            "/v2/{}/blobs/uploads/?mount={}&from={}",
            self.repository,
            digest.replace(':', "%3A"),
            from.repository.replace('/', "%2F")
        );
        let answer = self.send(
            Method::Post,
            &self.authority,
            &path,
            &[("content-length", "0".into())],
            Body::None,
        )?;
        match (answer.status, answer.location) {
            (201, _) => Ok(None),
            (202, Some(location)) => Ok(Some(self.upload_at(&location, digest, blob))),
            // A registry that does not know the parameter: the usual way.
            _ if self.has_blob(digest)? => Ok(None),
            _ => self.upload_to_session(digest, blob).map(Some),
        }
    }
}

/// The repository the input image was pulled from (`image.source`), if
/// the runtime pulled it from a registry.
fn input_source() -> Option<Registry> {
    image::source().map(|s| Registry {
        authority: s.registry,
        repository: s.repository,
        insecure: false,
    })
}

/// What the first name of each registry does with each blob: nothing when
/// the registry has it; a mount from `source` when that is another
/// repository of the same registry (a blob not there gets the upload
/// session the registry opens instead); else an upload.
fn first_names<'a>(
    targets: &[Target],
    firsts: &[usize],
    blobs: &[&'a Blob],
    source: Option<&Registry>,
    stats: &mut [PushStats],
) -> Result<Vec<Pending<'a>>, Error> {
    let mut pending = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        if firsts[i] != i {
            continue;
        }
        let to = &target.registry;
        let from = source.filter(|s| s.authority == to.authority && s.repository != to.repository);
        for &blob in blobs {
            let digest = blob.descriptor().digest;
            if to.has_blob(&digest)? {
                stats[i].present += 1;
                continue;
            }
            match from {
                Some(from) => match to.mount(&digest, from, blob)? {
                    Some(session) => pending.push((i, session)),
                    None => stats[i].mounted += 1,
                },
                None => pending.push((i, to.upload_to_session(&digest, blob)?)),
            }
        }
    }
    Ok(pending)
}

/// For each target, the index of the first target of the same registry
/// (itself when it is the first).
fn first_of_registry(targets: &[Target]) -> Vec<usize> {
    targets
        .iter()
        .map(|t| {
            targets
                .iter()
                .position(|o| {
                    o.registry.authority == t.registry.authority
                        && o.registry.insecure == t.registry.insecure
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Sends every pending upload, [`PARALLEL_UPLOADS`] per registry in flight
/// (registries taken in turn), counting each in its target's stats.
fn upload(
    targets: &[Target],
    pending: Vec<Pending<'_>>,
    stats: &mut [PushStats],
) -> Result<(), Error> {
    let mut registries: Vec<&str> = Vec::new();
    let mut queues: Vec<Vec<Pending<'_>>> = Vec::new();
    for (i, upload) in pending {
        let authority = targets[i].registry.authority.as_str();
        let slot = match registries.iter().position(|r| *r == authority) {
            Some(slot) => slot,
            None => {
                registries.push(authority);
                queues.push(Vec::new());
                queues.len() - 1
            }
        };
        queues[slot].push((i, upload));
    }
    // Round robin: each registry's uploads are spread over the queue.
    let mut order = Vec::new();
    let mut queues: Vec<_> = queues.into_iter().map(Vec::into_iter).collect();
    loop {
        let before = order.len();
        for queue in &mut queues {
            order.extend(queue.next());
        }
        if order.len() == before {
            break;
        }
    }
    let (owners, uploads): (Vec<usize>, Vec<Upload<'_>>) = order.into_iter().unzip();
    upload_all(
        &uploads,
        PARALLEL_UPLOADS * registries.len().max(1),
        |i, outcome| {
            targets[owners[i]].registry.uploaded(&uploads[i], outcome)?;
            stats[owners[i]].uploaded += 1;
            Ok(())
        },
    )
}
