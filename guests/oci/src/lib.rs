//! outport's OCI exporter, as a WebAssembly component (world
//! `outport:exporter/exporter`), built on the `outport-exporter` SDK.
//!
//! It writes the image it is given as an [OCI image layout]: a tarball
//! (`tar=true`, the default) or a directory (`tar=false`). The flow:
//!
//! - [`options`] parses and checks the options (`validate`);
//! - the SDK's `Plan` walks the image from its root and applies the image
//!   options (annotations, media types; layers recompressed and timestamps
//!   rewritten by the host), giving the root descriptor and the ordered
//!   list of blobs;
//! - its `Layout` turns that into the files of the layout (`oci-layout`,
//!   `index.json`, `blobs/sha256/…`) and writes them into a tar or a
//!   directory, layer bytes copied by the host (`copy-to-file`);
//! - `response::image_entries` builds the response keys.
//!
//! Everything is deterministic: the same image and options give the same
//! bytes.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod options;

use outport_exporter::{
    ComponentInfo, Destination, Error, Guest, Layout, Options, OutputKind, Plan, Request,
    ResponseEntry, TarWriter, dest, log, response,
};

struct Oci;

impl Guest for Oci {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "oci".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "write the image as an OCI image layout, tarball or directory".to_owned(),
            options: outport_exporter::options::describe(&options::specs()),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        let opts = options::parse(&options)?;
        Ok(if opts.tar {
            OutputKind::File
        } else {
            OutputKind::Directory
        })
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let opts = options::parse(&request.options)?;
        let dest = dest::granted(request.destination)?;
        let rewrites = opts.image.rewrites(request.source_date_epoch)?;
        let plan = Plan::image(&rewrites)?;
        let layout = Layout::new(&plan, &opts.names)?;
        if opts.tar {
            write_tar(&dest, &layout)?;
        } else {
            let dir = dest::preopen(&dest.preopen)?;
            let bytes = layout.write_dir(&dir)?;
            log::info(&format!(
                "wrote OCI layout directory: {} blobs, {bytes} bytes",
                layout.blobs.len()
            ));
        }
        response::image_entries(&plan, &opts.names)
    }
}

/// Writes the layout as a tarball into the destination file.
fn write_tar(dest: &Destination, layout: &Layout) -> Result<(), Error> {
    let (name, file) = dest::open_file(dest, "tar=true")?;
    let mut tar = TarWriter::new(file, &name);
    layout.write_tar(&mut tar, &[])?;
    let bytes = tar.finish()?;
    log::info(&format!(
        "wrote OCI layout tarball {name}: {} blobs, {bytes} bytes",
        layout.blobs.len()
    ));
    Ok(())
}

outport_exporter::export!(Oci);
