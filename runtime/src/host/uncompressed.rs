//! Layer conversions run for an instance (`convert-layers`,
//! `uncompressed-layers`): in parallel on blocking threads, and the check
//! that makes a decompressed layer its uncompressed view (its tar hashes to
//! the diff ID the image's configs give it).
//!
//! A view is the run's converter asked to decompress the layer
//! ([`VIEW`]): so it is made once per run, shared by every instance that
//! asks, bounded by the asking instance's budget, and kept in an unnamed
//! temporary file until the run ends.

use std::sync::Arc;

use outport_image::{Blob, Budget, Compression, ConvertOptions, Converted, Image};

use crate::image::BlobHandle;
use crate::image::diff_ids;
use crate::run::context::RunContext;
use crate::sandbox::text::truncate;

/// The conversion that makes a layer's uncompressed view.
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
