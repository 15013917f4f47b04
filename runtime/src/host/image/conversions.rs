//! The instance's side of layer conversions (`convert-layers`,
//! `uncompressed-layers`): their budget from its limits, the scratch bytes
//! they are charged, the converted layers and views it is handed.

use std::sync::Arc;

use super::super::uncompressed::check_diff_id;
use super::{BlobResource, ImageView};
use crate::host::bindings::HostError;
use crate::host::bindings::image::ConvertedLayer;
use crate::host::bindings::types::Error;
use crate::image::BlobHandle;
use crate::sandbox::limits::LimitReached;

impl ImageView<'_> {
    /// Records `hit` as the instance's limit reached (the first one is
    /// kept) and returns the guest's error for it.
    pub(super) fn limit(&mut self, hit: LimitReached) -> HostError {
        let error = Error::Limit(hit.message.clone());
        self.ctx.limit_hit.get_or_insert(hit);
        error.into()
    }

    /// How many conversions with `options` may run at once (as many as
    /// there are cores and as the instance's memory limit holds), and what
    /// each may spend (the instance's deadline and remaining scratch).
    pub(super) fn conversion_budget(
        &mut self,
        options: &outport_image::ConvertOptions,
    ) -> Result<(usize, outport_image::Budget), HostError> {
        let limits = &self.ctx.limits;
        let per_layer = options.host_memory();
        let fit = (limits.memory_bytes as u64 / per_layer.max(1)) as usize;
        if fit == 0 {
            let hit = LimitReached {
                name: "memory",
                value: limits.memory_bytes as u64,
                message: format!(
                    "convert-layers: {} needs about {} MiB of host memory per layer, over the memory limit of {} bytes",
                    describe_level(options),
                    per_layer >> 20,
                    limits.memory_bytes
                ),
            };
            return Err(self.limit(hit));
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let budget = outport_image::Budget {
            deadline: self.ctx.deadline,
            timeout_secs: limits.timeout.as_secs(),
            scratch_bytes: limits.scratch_bytes.saturating_sub(self.ctx.scratch_used),
        };
        Ok((cores.min(fit), budget))
    }

    /// Hands the converted layers to the guest, charging each to its
    /// scratch limit; the first failure (a limit, a damaged layer) fails
    /// the call.
    pub(super) fn take_converted(
        &mut self,
        outcomes: Vec<Result<Option<Arc<outport_image::Converted>>, outport_image::Error>>,
    ) -> Result<Vec<Option<ConvertedLayer>>, HostError> {
        let mut converted = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let layer = match outcome {
                Ok(Some(layer)) => layer,
                Ok(None) => {
                    converted.push(None);
                    continue;
                }
                Err(e) => return Err(self.conversion_error(&e)),
            };
            let blob = layer.blob.clone();
            self.charge_scratch(blob.size(), "convert-layers", "converted layers")?;
            self.ctx
                .own_blobs
                .insert(blob.descriptor().digest().to_string(), blob.clone());
            converted.push(Some(ConvertedLayer {
                blob: self.table.push(BlobResource::Blob(blob))?,
                diff_id: layer.diff_id.clone(),
            }));
        }
        Ok(converted)
    }
}

impl ImageView<'_> {
    /// The guest's error for a failed conversion: its limit, the temporary
    /// storage (`io`), or the layer (`invalid-image`).
    pub(super) fn conversion_error(&mut self, e: &outport_image::Error) -> HostError {
        match (e.limit(), e) {
            (Some((name, value)), _) => self.limit(LimitReached {
                name,
                value,
                message: e.to_string(),
            }),
            (None, outport_image::Error::ConvertStorage { .. }) => Error::Io(e.to_string()).into(),
            (None, _) => Error::InvalidImage(e.to_string()).into(),
        }
    }

    /// Charges `size` bytes of temporary disk handed to the instance by
    /// `call` (the `what` total, for the message) to its scratch limit.
    pub(super) fn charge_scratch(
        &mut self,
        size: u64,
        call: &str,
        what: &str,
    ) -> Result<(), HostError> {
        self.ctx.scratch_used = self.ctx.scratch_used.saturating_add(size);
        let scratch = self.ctx.limits.scratch_bytes;
        if self.ctx.scratch_used <= scratch {
            return Ok(());
        }
        let message = format!(
            "{call}: scratch limit of {scratch} bytes exceeded (the {what} total {})",
            self.ctx.scratch_used
        );
        Err(self.limit(LimitReached {
            name: "scratch",
            value: scratch,
            message,
        }))
    }

    /// Checks that `diff_id`, the digest of the tar of `layer`, is the one
    /// the image's configs give the layer; a mismatch fails the instance.
    pub(super) fn check_view(
        &mut self,
        layer: &BlobHandle,
        diff_id: &str,
    ) -> Result<(), HostError> {
        let image = self.ctx.image()?.clone();
        check_diff_id(&image, layer, diff_id).map_err(|mismatch| {
            let message = mismatch.to_string();
            self.ctx.damaged.record(message.clone());
            Error::InvalidImage(message).into()
        })
    }

    /// The uncompressed view `converted` of `layer`, once its tar matches
    /// the image's diff ID, charged to the instance's scratch limit (once
    /// per view) and found by `get-blob` under its digest.
    pub(super) fn take_view(
        &mut self,
        layer: &BlobHandle,
        converted: &outport_image::Converted,
    ) -> Result<BlobHandle, HostError> {
        self.check_view(layer, &converted.diff_id)?;
        let view = converted.blob.clone();
        let digest = view.descriptor().digest().to_string();
        if !self.ctx.own_blobs.contains_key(&digest) {
            self.charge_scratch(view.size(), "uncompressed-layers", "uncompressed layers")?;
            self.ctx.own_blobs.insert(digest, view.clone());
        }
        Ok(view)
    }
}

/// "zstd level 22", "gzip level 6", "uncompressed": what a conversion
/// compresses with, for a message.
fn describe_level(options: &outport_image::ConvertOptions) -> String {
    match options.level {
        Some(level) => format!("{} level {level}", options.compression.name()),
        None => options.compression.name().to_owned(),
    }
}
