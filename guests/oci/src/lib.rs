//! outport's OCI exporter, as a WebAssembly component (world
//! `outport:exporter/exporter`).
//!
//! It writes the image it is given as an [OCI image layout]: a tarball
//! (`tar=true`, the default) or a directory (`tar=false`). The flow:
//!
//! - [`options`] parses and checks the options (`validate`);
//! - [`plan`] walks the image from its root and applies annotation options,
//!   giving the root descriptor and the ordered list of blobs;
//! - [`layout`] turns that into the files of the layout (`oci-layout`,
//!   `index.json`, `blobs/sha256/…`);
//! - [`tar_writer`] or [`dir_writer`] writes them to the granted destination,
//!   layer bytes moved by the host (`copy-to-stream` / `copy-to-file`);
//! - [`response`] builds the response keys.
//!
//! Everything is deterministic: the same image and options give the same
//! bytes.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod bindings;
mod dir_writer;
mod layout;
mod media;
mod options;
mod plan;
mod reference;
mod response;
mod tar_writer;
mod wasi_io;

use bindings::outport::exporter::host::{self, Level};
use bindings::outport::exporter::types::{
    ComponentInfo, Destination, Error, Options, OutputKind, Request, ResponseEntry,
};

use layout::{Layout, OCI_LAYOUT};
use tar_writer::TarWriter;

struct Oci;

impl bindings::Guest for Oci {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "oci".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "write the image as an OCI image layout, tarball or directory".to_owned(),
            options: options::info(),
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
        let dest = request
            .destination
            .ok_or_else(|| Error::Other("no destination was granted".to_owned()))?;
        let plan = plan::plan(&opts)?;
        let layout = Layout::new(&plan, &opts.names)?;
        if opts.tar {
            write_tar(&dest, &layout)?;
        } else {
            let dir = wasi_io::preopen(&dest.preopen)?;
            let bytes = dir_writer::write(&dir, &layout)?;
            host::log(
                Level::Info,
                &format!(
                    "wrote OCI layout directory: {} blobs, {bytes} bytes",
                    layout.blobs.len()
                ),
            );
        }
        response::entries(&plan, &opts.names)
    }
}

/// Writes the layout as a tarball through one output-stream.
fn write_tar(dest: &Destination, layout: &Layout) -> Result<(), Error> {
    let name = dest.file.as_deref().ok_or_else(|| {
        Error::Other(
            "tar=true needs a file destination, but the runtime granted a directory".to_owned(),
        )
    })?;
    let dir = wasi_io::preopen(&dest.preopen)?;
    let file = wasi_io::create_file(&dir, name)?;
    let stream = file
        .write_via_stream(0)
        .map_err(|e| wasi_io::fs_error(&format!("opening {name} for writing"), e))?;
    let mut tar = TarWriter::new(stream, name);
    tar.file("oci-layout", OCI_LAYOUT)?;
    tar.file("index.json", &layout.index_json)?;
    for d in &layout.dirs {
        tar.dir(d)?;
    }
    let total = layout.blobs.len() as u64;
    host::progress("writing blobs", 0, total);
    for (i, (path, blob)) in layout.blobs.iter().enumerate() {
        tar.blob(path, blob)?;
        host::progress("writing blobs", i as u64 + 1, total);
    }
    let bytes = tar.finish()?;
    host::log(
        Level::Info,
        &format!(
            "wrote OCI layout tarball {name}: {} blobs, {bytes} bytes",
            layout.blobs.len()
        ),
    );
    Ok(())
}

bindings::export!(Oci with_types_in bindings);
