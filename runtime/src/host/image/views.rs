//! The instance's side of `uncompressed-layers`' views: a view is made in
//! the background and becomes the instance's on its first use (waiting
//! until it is ready), or when the export ends, read or not: its tar
//! checked against the diff ID, its size charged to the instance's
//! scratch limit, its error (a bad layer, a limit, a full disk) the
//! call's or the instance's.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::super::uncompressed::PendingView;
use super::{BlobResource, ImageView};
use crate::host::bindings::HostError;
use crate::image::BlobHandle;

impl ImageView<'_> {
    /// The blob behind `this`: for a view, once it is ready (waiting for
    /// it), and from then on without waiting.
    pub(super) async fn blob_of(
        &mut self,
        this: &Resource<BlobResource>,
    ) -> Result<BlobHandle, HostError> {
        let view = match self.table.get(this)? {
            BlobResource::Blob(blob) => return Ok(blob.clone()),
            BlobResource::View(view) => view.clone(),
        };
        let blob = self.settle(&view).await?;
        *self.table.get_mut(this)? = BlobResource::Blob(blob.clone());
        Ok(blob)
    }

    /// The blobs behind `these`, in order (see [`ImageView::blob_of`]).
    pub(super) async fn blobs_of(
        &mut self,
        these: &[Resource<BlobResource>],
    ) -> Result<Vec<BlobHandle>, HostError> {
        let mut blobs = Vec::with_capacity(these.len());
        for this in these {
            blobs.push(self.blob_of(this).await?);
        }
        Ok(blobs)
    }

    /// Waits for `view` to be made and makes it the instance's: an
    /// uncompressed layer once its digest is found to be its diff ID, a
    /// decompressed one once its tar is (charged to the scratch limit once
    /// per view). A failed view fails every call that uses it the same way.
    async fn settle(&mut self, view: &PendingView) -> Result<BlobHandle, HostError> {
        match view.outcome().await? {
            Ok(None) => {
                let digest = view.layer.descriptor().digest().to_string();
                self.check_view(&view.layer, &digest)?;
                Ok(view.layer.clone())
            }
            Ok(Some(converted)) => self.take_view(&view.layer, &converted),
            Err(e) => {
                self.ctx.damaged.note_failed_view(&e);
                Err(self.conversion_error(&e))
            }
        }
    }

    /// The view whose digest is `digest`, among those handed to the
    /// instance (waiting for each in turn until it is found); none if no
    /// view has it. A view that failed is skipped here: its error is met
    /// by its own uses and when the export ends.
    pub(super) async fn view_by_digest(&mut self, digest: &str) -> Option<BlobHandle> {
        let views: Vec<Arc<PendingView>> = self.ctx.views.values().cloned().collect();
        for view in &views {
            if let Ok(blob) = self.settle(view).await
                && blob.descriptor().digest().to_string() == digest
            {
                return Some(blob);
            }
        }
        None
    }

    /// Settles every view handed to the instance (see
    /// [`ImageView::settle`]), waiting for those still in the making: when
    /// an export ends, so that a layer that does not match its diff ID (or
    /// could not be made) fails the instance even if no call read its view.
    /// A compressed layer's view read again since it was made has its
    /// source checked: the compressed bytes its decoders read still hash
    /// to the layer's digest (the rest of them read for decoders that
    /// stopped early), so a layer changed on disk meanwhile fails the
    /// instance. The first failure is returned.
    pub(crate) async fn settle_views(&mut self) -> Result<(), HostError> {
        let views: Vec<Arc<PendingView>> = self.ctx.views.values().cloned().collect();
        for view in &views {
            let blob = self.settle(view).await?;
            let checked = tokio::task::spawn_blocking(move || blob.check_source()).await?;
            self.blob_result(checked)?;
        }
        Ok(())
    }
}
