//! The data of one instance's store: the WASI context and resource table,
//! the store limiter, and one context per capability the host gives it
//! (the image, log and progress, outbound HTTP), each handed to its
//! interface as a view (see [`crate::host`]).

use std::sync::Arc;
use std::time::Instant;

use outport_image::Image;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::host::HostView;
use crate::host::files::FilesView;
use crate::host::host::ReportCtx;
use crate::host::http::HttpAccess;
use crate::host::image::{ImageCtx, ImageView};
use crate::host::stdio::GuestLog;
use crate::run::context::RunContext;
use crate::run::reporter::Reporter;
use crate::sandbox::limits::{Limiter, Limits};

/// Store data of one instance.
pub struct InstanceState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// When everything done for the instance must end (its time limit).
    pub(crate) deadline: Option<Instant>,
    /// The `image` interface's context.
    pub(crate) image: ImageCtx,
    /// The `host` interface's context.
    pub(crate) report: ReportCtx,
    pub(crate) http_ctx: WasiHttpCtx,
    /// Where the instance's `wasi:http` requests may go, and with what.
    pub(crate) http: HttpAccess,
}

/// What an instance is given besides its WASI context.
pub struct Grants {
    /// The image it exports (`None` while only describing).
    pub image: Option<Arc<Image>>,
    /// What the run's instances share (`None` while only describing).
    pub run: Option<Arc<RunContext>>,
    /// Where its log lines and stdio go.
    pub log: GuestLog,
    /// Its outgoing HTTP.
    pub http: HttpAccess,
    pub reporter: Arc<dyn Reporter>,
    pub instance_id: String,
}

impl InstanceState {
    /// State for an instance with WASI context `ctx`, given `grants`, under
    /// `limits`; its time runs from now.
    pub fn new(ctx: WasiCtx, grants: Grants, limits: &Limits) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        let deadline = Instant::now().checked_add(limits.timeout);
        InstanceState {
            ctx,
            table,
            limiter: Limiter::new(limits),
            deadline,
            image: ImageCtx::new(grants.image, grants.run, limits, deadline),
            report: ReportCtx::new(grants.reporter, grants.instance_id, grants.log),
            http_ctx: WasiHttpCtx::new(),
            http: grants.http,
        }
    }
}

impl HostView for InstanceState {
    fn image(&mut self) -> ImageView<'_> {
        ImageView {
            ctx: &mut self.image,
            table: &mut self.table,
        }
    }

    fn files(&mut self) -> FilesView<'_> {
        FilesView {
            table: &mut self.table,
        }
    }

    fn report(&mut self) -> &mut ReportCtx {
        &mut self.report
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
