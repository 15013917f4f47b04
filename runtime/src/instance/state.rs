//! The data of one instance's store: its WASI context, resource table,
//! limits and the image it exports.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use outport_image::Image;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::host::http::HttpAccess;

use crate::host::image::{BlobHandle, DamagedInput};
use crate::host::stdio::{GuestLog, Throttle};
use crate::instance::RunContext;
use crate::run::reporter::Reporter;
use crate::sandbox::limits::{Limiter, Limits, OutputQuota};

/// Store data of one instance.
pub struct InstanceState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The image being exported (`None` while only describing).
    pub(crate) image: Option<Arc<Image>>,
    /// Blobs this instance created with `put-blob`.
    pub(crate) own_blobs: HashMap<String, BlobHandle>,
    /// Bytes held by `own_blobs`.
    pub(crate) own_blob_bytes: u64,
    /// The instance's limits.
    pub(crate) limits: Limits,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) instance_id: String,
    /// Where its log lines and stdio go.
    pub(crate) log: GuestLog,
    pub(crate) quota: OutputQuota,
    /// When everything done for the instance must end (its time limit).
    pub(crate) deadline: Option<Instant>,
    /// Bytes of converted layers handed to the instance (`scratch-bytes`).
    pub(crate) scratch_used: u64,
    /// What the run's instances share (`None` while only describing).
    pub(crate) run: Option<Arc<RunContext>>,
    pub(crate) http_ctx: WasiHttpCtx,
    /// Where the instance's `wasi:http` requests may go, and with what.
    pub(crate) http: HttpAccess,
    pub(crate) progress_rate: Throttle,
    /// The first damaged blob served to the instance, if any.
    pub(crate) damaged: DamagedInput,
}

impl InstanceState {
    /// State for instance `instance_id` exporting `image` under `limits`,
    /// its log lines going to `log`, its outgoing HTTP through `http`.
    pub fn new(
        ctx: WasiCtx,
        log: GuestLog,
        http: HttpAccess,
        image: Option<Arc<Image>>,
        reporter: Arc<dyn Reporter>,
        instance_id: String,
        limits: &Limits,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        InstanceState {
            ctx,
            table,
            limiter: Limiter::new(limits),
            image,
            own_blobs: HashMap::new(),
            own_blob_bytes: 0,
            limits: limits.clone(),
            reporter,
            instance_id,
            log,
            quota: OutputQuota::new(limits.output_bytes),
            deadline: Instant::now().checked_add(limits.timeout),
            scratch_used: 0,
            run: None,
            http_ctx: WasiHttpCtx::new(),
            http,
            progress_rate: Throttle::default(),
            damaged: DamagedInput::default(),
        }
    }
}

impl InstanceState {
    /// The image, or a trap when the guest asks for it outside an export.
    pub(crate) fn image(&self) -> wasmtime::Result<&Arc<Image>> {
        self.image
            .as_ref()
            .ok_or_else(|| wasmtime::Error::msg("the image is only available during export"))
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}
