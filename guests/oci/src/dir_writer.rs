//! Writes the layout as a directory tree in the granted directory: small
//! files by the guest, blobs by the host (`blob.copy-to-file`).

use crate::bindings::outport::exporter::host::{self, Level};
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::layout::{Layout, OCI_LAYOUT};
use crate::wasi_io::{create_dir, create_file, write_file};

/// Writes `layout` into `dir`; returns the number of bytes written.
pub fn write(dir: &Descriptor, layout: &Layout) -> Result<u64, Error> {
    write_file(dir, "oci-layout", OCI_LAYOUT)?;
    write_file(dir, "index.json", &layout.index_json)?;
    for d in &layout.dirs {
        create_dir(dir, d.trim_end_matches('/'))?;
    }
    let total = layout.blobs.len() as u64;
    let mut written = (OCI_LAYOUT.len() + layout.index_json.len()) as u64;
    host::progress("writing blobs", 0, total);
    for (i, (path, blob)) in layout.blobs.iter().enumerate() {
        let file = create_file(dir, path)?;
        let size = blob.descriptor().size;
        let copied = blob.copy_to_file(&file, 0)?;
        if copied != size {
            return Err(Error::Io(format!(
                "writing {path}: copied {copied} bytes, expected {size}"
            )));
        }
        written += copied;
        host::log(Level::Debug, &format!("wrote {path} ({copied} bytes)"));
        host::progress("writing blobs", i as u64 + 1, total);
    }
    Ok(written)
}
