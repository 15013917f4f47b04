//! The content-addressed blob store of pulled images: `blobs/sha256/HEX`
//! under a directory of the cache (`$OUTPORT_CACHE_DIR/blobs`), the layout
//! of an OCI image layout's blobs, so a pulled image is read as a layout.
//!
//! A blob is written to a temporary file of the store's `tmp/` and renamed
//! into place only once its digest and size are checked, so concurrent runs
//! never see half a blob, and two runs writing the same blob both leave a
//! whole one. A blob already there (of the right size) is not downloaded
//! again; its bytes are checked again as they are read, like any layout's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use outport_image::Image;
use outport_oci::Sha256Digest;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory of the store.
    #[error("blob store {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image read from the store is invalid.
    #[error(transparent)]
    Image(#[from] outport_image::Error),
}

/// The blob store at a directory.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: Arc<PathBuf>,
}

/// A blob being written.
pub struct TempBlob {
    file: tempfile::NamedTempFile,
    store: BlobStore,
}

fn store_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl BlobStore {
    /// The store at `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<BlobStore, StoreError> {
        for sub in ["blobs/sha256", "tmp"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| store_error(&path, e))?;
        }
        Ok(BlobStore {
            root: Arc::new(dir.to_owned()),
        })
    }

    fn path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the store holds `digest`, `size` bytes long.
    pub fn has(&self, digest: &Sha256Digest, size: u64) -> bool {
        std::fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Stores `bytes`, whose digest the caller computed, unless there.
    pub fn put(&self, digest: &Sha256Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has(digest, bytes.len() as u64) {
            return Ok(());
        }
        let mut temp = self.temp()?;
        temp.write(bytes)?;
        temp.keep(digest)
    }

    /// A new temporary blob.
    pub fn temp(&self) -> Result<TempBlob, StoreError> {
        let dir = self.root.join("tmp");
        let file = tempfile::NamedTempFile::new_in(&dir).map_err(|e| store_error(&dir, e))?;
        Ok(TempBlob {
            file,
            store: self.clone(),
        })
    }

    /// Reads the image whose root (an index or manifest of `media_type`,
    /// `size` bytes) is `root` from the store, as an OCI layout;
    /// `display` names it.
    pub fn open_image(
        &self,
        root: &Sha256Digest,
        media_type: &str,
        size: u64,
        display: &str,
    ) -> Result<Image, StoreError> {
        let tmp = self.root.join("tmp");
        let layout = tempfile::Builder::new()
            .prefix("layout-")
            .tempdir_in(&tmp)
            .map_err(|e| store_error(&tmp, e))?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": outport_oci::media::OCI_INDEX,
            "manifests": [{"mediaType": media_type, "digest": root, "size": size}],
        });
        let write = |name: &str, text: &str| {
            let path = layout.path().join(name);
            std::fs::write(&path, text).map_err(|e| store_error(&path, e))
        };
        write("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        write("index.json", &index.to_string())?;
        let blobs = layout.path().join("blobs");
        std::os::unix::fs::symlink(self.root.join("blobs"), &blobs)
            .map_err(|e| store_error(&blobs, e))?;
        // The blobs hold their files open: the layout can go at once.
        Ok(outport_image::open_path(layout.path(), display, None)?)
    }
}

impl TempBlob {
    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(data)
            .map_err(|e| store_error(self.file.path(), e))
    }

    /// Puts the blob, checked by the caller to be `digest`, in place.
    pub fn keep(self, digest: &Sha256Digest) -> Result<(), StoreError> {
        let target = self.store.path(digest);
        self.file
            .persist(&target)
            .map(drop)
            .map_err(|e| store_error(&target, e.error))
    }
}
