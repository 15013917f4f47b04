//! outport's local exporter, as a WebAssembly component (world
//! `outport:exporter/exporter`), built on the `outport-exporter` SDK.
//!
//! It unpacks the image's root filesystem into the granted directory: the
//! layers applied in order (whiteouts and opaque directories honoured),
//! hard links and symlinks kept, times set. A multi-platform image gives one
//! directory per platform (`linux_amd64/`, …) unless
//! `platform-split=false` merges them. Hostile layers (paths climbing out,
//! symlinks or hard links pointing outside, devices) cannot touch anything
//! outside the destination: see the SDK's `rootfs::local` module.

use outport_exporter::rootfs::{self, local};
use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Request, ResponseEntry, dest, log,
};

struct Local;

impl Guest for Local {
    fn describe() -> ComponentInfo {
        rootfs::component_info(
            "local",
            env!("CARGO_PKG_VERSION"),
            "unpack the image's root filesystem into a directory",
        )
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        rootfs::parse("local", &options)?;
        Ok(OutputKind::Directory)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let opts = rootfs::parse("local", &request.options)?;
        let dest = dest::granted(request.destination)?;
        let plan = rootfs::plan(&opts)?;
        let dir = dest::preopen(&dest.preopen)?;
        let paths = local::write(&plan, &dir)?;
        log::info(&format!(
            "unpacked {paths} paths (modes and times set, owners left to the host user)"
        ));
        rootfs::response()
    }
}

outport_exporter::export!(Local);
