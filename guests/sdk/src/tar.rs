//! A tar written into a file at increasing offsets: ustar headers built
//! with the `tar` crate (mtime 0, uid/gid 0, mode 0644/0755), blob bytes
//! copied by the host straight into the file (`blob.copy-to-file`, where the
//! host hashes while it copies, or uses `copy_file_range` for a blob already
//! verified), padding to 512 bytes, and the two zero blocks that end an
//! archive.

use tar::{EntryType, Header};

use crate::bindings::outport::exporter::image::Blob;
use crate::bindings::outport::exporter::types::Error;
use crate::bindings::wasi::filesystem::types::Descriptor;
use crate::dest::write_all_at;
use crate::log;

const BLOCK: u64 = 512;
const ZEROS: [u8; 512] = [0; 512];

/// Writes tar entries into a file.
pub struct TarWriter {
    file: Descriptor,
    /// What the archive is, for messages (`image.tar`).
    name: String,
    /// Bytes written so far: where the next entry goes.
    written: u64,
}

impl TarWriter {
    /// A tar written into `file` (opened for writing, from offset 0);
    /// `name` says what the archive is, for messages.
    pub fn new(file: Descriptor, name: &str) -> Self {
        TarWriter {
            file,
            name: name.to_owned(),
            written: 0,
        }
    }

    /// A directory entry (`path` ends with `/`).
    pub fn dir(&mut self, path: &str) -> Result<(), Error> {
        let header = header(path, EntryType::Directory, 0o755, 0)?;
        self.put(header.as_bytes(), path)
    }

    /// A regular file whose bytes the guest holds.
    pub fn file(&mut self, path: &str, bytes: &[u8]) -> Result<(), Error> {
        let header = header(path, EntryType::Regular, 0o644, bytes.len() as u64)?;
        self.put(header.as_bytes(), path)?;
        self.put(bytes, path)?;
        self.pad(bytes.len() as u64, path)
    }

    /// A regular file with a blob's bytes, copied by the host.
    pub fn blob(&mut self, path: &str, blob: &Blob) -> Result<(), Error> {
        let desc = blob.descriptor();
        let header = header(path, EntryType::Regular, 0o644, desc.size)?;
        self.put(header.as_bytes(), path)?;
        let copied = blob.copy_to_file(&self.file, self.written)?;
        if copied != desc.size {
            return Err(Error::Io(format!(
                "writing {path} to {}: copied {copied} bytes of {}, expected {}",
                self.name, desc.digest, desc.size
            )));
        }
        self.written += copied;
        log::debug(&format!("wrote {path} ({copied} bytes)"));
        self.pad(copied, path)
    }

    /// Ends the archive; returns its size.
    pub fn finish(mut self) -> Result<u64, Error> {
        self.put(&ZEROS, "end of archive")?;
        self.put(&ZEROS, "end of archive")?;
        Ok(self.written)
    }

    fn pad(&mut self, size: u64, path: &str) -> Result<(), Error> {
        let rem = size % BLOCK;
        if rem == 0 {
            return Ok(());
        }
        self.put(&ZEROS[..(BLOCK - rem) as usize], path)
    }

    fn put(&mut self, bytes: &[u8], path: &str) -> Result<(), Error> {
        write_all_at(
            &self.file,
            bytes,
            self.written,
            &format!("writing {path} to {}", self.name),
        )?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// A ustar header with fixed ownership and time, so archives are reproducible.
fn header(path: &str, kind: EntryType, mode: u32, size: u64) -> Result<Header, Error> {
    let mut header = Header::new_ustar();
    header
        .set_path(path)
        .map_err(|e| Error::Other(format!("tar header for {path}: {e}")))?;
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_header_keeps_trailing_slash() {
        let h = header("blobs/sha256/", EntryType::Directory, 0o755, 0).unwrap();
        assert_eq!(&h.as_bytes()[..14], b"blobs/sha256/\0");
        assert_eq!(h.mode().unwrap(), 0o755);
        assert_eq!(h.mtime().unwrap(), 0);
    }
}
