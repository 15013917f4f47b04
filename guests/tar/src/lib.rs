//! outport's tar exporter, as a WebAssembly component (world
//! `outport:exporter/exporter`), built on the `outport-exporter` SDK.
//!
//! It writes the image's root filesystem as one tar stream: the layers
//! applied in order (whiteouts and opaque directories honoured), hard links
//! and symlinks kept, modes, owners and times as the layers record them.
//! A multi-platform image gives one directory per platform
//! (`linux_amd64/`, …) unless `platform-split=false` merges them. See the
//! SDK's `rootfs` module for how: file bytes stream from the layers to the
//! output, never held whole in memory, and those of uncompressed layers are
//! copied by the host without entering the component.

use outport_exporter::rootfs::{self, tar_out};
use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Request, ResponseEntry, dest, log,
};

struct Tar;

impl Guest for Tar {
    fn describe() -> ComponentInfo {
        rootfs::component_info(
            "tar",
            env!("CARGO_PKG_VERSION"),
            "write the image's root filesystem as a tar stream",
        )
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        rootfs::parse("tar", &options)?;
        Ok(OutputKind::File)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let opts = rootfs::parse("tar", &request.options)?;
        let dest = dest::granted(request.destination)?;
        let plan = rootfs::plan(&opts)?;
        let (name, file) = dest::open_file(&dest, "the tar exporter")?;
        let entries = tar_out::write(&plan, file, &name)?;
        log::info(&format!("wrote {name}: {entries} entries"));
        rootfs::response()
    }
}

outport_exporter::export!(Tar);
