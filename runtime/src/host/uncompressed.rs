//! Layer conversions run for an instance (`convert-layers`,
//! `uncompressed-layers`): in parallel on blocking threads, and the check
//! that makes a decompressed layer its uncompressed view (its tar hashes to
//! the diff ID the image's configs give it).
//!
//! A view is the run's converter asked for the layer's view
//! (`Converter::view`): so it is made once per run, shared by every
//! instance that asks, bounded by the asking instance's budget. A
//! compressed layer's view keeps no decompressed copy: the layer is
//! decompressed once to hash its tar and record its headers (in an unnamed
//! temporary file, removed with the run), and again where its bytes are
//! read or copied out. `uncompressed-layers` does not wait
//! for its views: it starts them ([`start_views`], in the order asked) and
//! hands out [`PendingView`]s, each ready when its own layer is.

use std::sync::Arc;

use outport_image::{Blob, Budget, Compression, ConvertOptions, Converted, Image};
use tokio::sync::{Semaphore, watch};

use crate::image::BlobHandle;
use crate::image::diff_ids;
use crate::run::context::RunContext;
use crate::sandbox::text::truncate;

/// The conversion a layer's uncompressed view amounts to (for the host
/// memory it may take).
pub(super) const VIEW: ConvertOptions = ConvertOptions {
    compression: Compression::Uncompressed,
    level: None,
    force: true,
    rewrite_timestamp: None,
};

/// What one conversion gave: none when the layer is already as asked.
pub(super) type Outcome = Result<Option<Arc<Converted>>, outport_image::Error>;

/// Converts every blob of `blobs` as `options` ask, within `budget`, at
/// most `parallel` at once; one outcome per blob, in order.
pub(super) async fn convert_all(
    run: &Arc<RunContext>,
    blobs: Vec<BlobHandle>,
    options: ConvertOptions,
    budget: Budget,
    parallel: usize,
) -> wasmtime::Result<Vec<Outcome>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let permit = permits.clone().acquire_owned().await?;
        let run = run.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run.converter.convert(&blob, &options, &budget)
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    Ok(outcomes)
}

/// What a `blob` resource of an instance is (the resource type of the
/// `image` interface's bindings).
#[derive(Debug, Clone)]
pub enum BlobResource {
    /// A blob of the image, or one the instance made.
    Blob(BlobHandle),
    /// A layer's uncompressed view (`uncompressed-layers`), which may still
    /// be in the making: any use of it waits until it is ready.
    View(Arc<PendingView>),
}

/// How a view's conversion ended, shared by everyone waiting for it.
pub(super) type ViewOutcome = Result<Option<Arc<Converted>>, Arc<outport_image::Error>>;

/// A layer's uncompressed view as `uncompressed-layers` hands it out:
/// the layer, and the outcome of its conversion once it has ended.
#[derive(Debug)]
pub struct PendingView {
    /// The layer the view is of.
    pub(super) layer: BlobHandle,
    outcome: watch::Receiver<Option<ViewOutcome>>,
}

impl PendingView {
    /// The conversion's outcome, waiting for it to end; a trap if it
    /// stopped without one (its thread panicked).
    pub(super) async fn outcome(&self) -> wasmtime::Result<ViewOutcome> {
        let mut outcome = self.outcome.clone();
        let ended = outcome.wait_for(Option::is_some).await;
        match ended.as_deref() {
            Ok(Some(outcome)) => Ok(outcome.clone()),
            _ => Err(wasmtime::Error::msg(format!(
                "the uncompressed view of layer {} stopped without an outcome",
                self.layer.descriptor().digest()
            ))),
        }
    }
}

/// Starts making the uncompressed view of each of `layers` in the
/// background and returns at once, one [`PendingView`] per layer, in
/// order. Layers start in that order, at most `parallel` at once, each
/// within `budget`; a layer whose views were all dropped before it
/// started (the instance ended) is not started.
pub(super) fn start_views(
    run: &Arc<RunContext>,
    layers: Vec<BlobHandle>,
    budget: Budget,
    parallel: usize,
) -> Vec<Arc<PendingView>> {
    let mut views = Vec::with_capacity(layers.len());
    let mut jobs = Vec::with_capacity(layers.len());
    for layer in layers {
        let (done, outcome) = watch::channel(None);
        views.push(Arc::new(PendingView {
            layer: layer.clone(),
            outcome,
        }));
        jobs.push((layer, done));
    }
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let run = run.clone();
    tokio::spawn(async move {
        for (layer, done) in jobs {
            if done.is_closed() {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            if done.is_closed() {
                continue;
            }
            let run = run.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let outcome = run.converter.view(&layer, &budget);
                // No one may be waiting any more: the outcome is then dropped.
                let _ = done.send(Some(outcome.map_err(Arc::new)));
            });
        }
    });
    views
}

/// Checks that `diff_id`, what the uncompressed tar of `layer` hashes to,
/// is what every config of `image` listing the layer says.
pub(super) fn check_diff_id(
    image: &Image,
    layer: &Blob,
    diff_id: &str,
) -> Result<(), DiffIdMismatch> {
    let digest = layer.descriptor().digest().to_string();
    match diff_ids::expected(image, &digest)
        .into_iter()
        .find(|expected| expected != diff_id)
    {
        None => Ok(()),
        Some(expected) => Err(DiffIdMismatch {
            image: image.name().to_owned(),
            layer: digest,
            diff_id: diff_id.to_owned(),
            expected: truncate(&expected, 100).to_owned(),
        }),
    }
}

/// A layer whose uncompressed tar is not the one the image's config names.
#[derive(Debug, thiserror::Error)]
#[error(
    "{image}: layer {layer}: its uncompressed tar hashes to {diff_id}, but the image config says {expected:?}"
)]
pub(super) struct DiffIdMismatch {
    /// The image's name.
    image: String,
    /// The layer's digest.
    layer: String,
    /// What its tar hashes to.
    diff_id: String,
    /// What the config says (shortened: it is input).
    expected: String,
}
