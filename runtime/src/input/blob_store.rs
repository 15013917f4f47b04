//! The content-addressed blob store of pulled images: `blobs/sha256/HEX`
//! under a directory of the cache (`$OUTPORT_CACHE_DIR/blobs`), the layout
//! of an OCI image layout's blobs, so a pulled image is read as a layout.
//!
//! A blob is written to a temporary file of the store's `tmp/` and renamed
//! into place only once its digest and size are checked, so concurrent runs
//! never see half a blob, and two runs writing the same blob both leave a
//! whole one. A blob already there (of the right size) is not downloaded
//! again; its bytes are checked again as they are read, like any layout's.
//!
//! The store is capped ([`BlobStore::prune`], after a run): least recently
//! used blobs (each use sets a blob's modification time) are removed until
//! the store fits, never one the run used. Runs hold a shared `flock` on
//! the store's `lock` file while they write and read its documents, and
//! pruning an exclusive one, so a run never loses a manifest or config
//! between writing and reading it; a layer a run has open stays readable
//! when removed (the file lives while open), and one it has yet to fetch
//! is downloaded again.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use outport_image::{Fetch, Image, SmallWrites};
use outport_oci::Sha256Digest;
use rustix::fs::{FlockOperation, flock};

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
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// A store of one run alone (no cache directory): removed with it.
    _scratch: Option<tempfile::TempDir>,
}

/// A blob being written.
pub struct TempBlob {
    file: tempfile::NamedTempFile,
    store: BlobStore,
}

/// A shared lock on the store (see the module docs), released when dropped.
pub struct SharedLock {
    _file: File,
}

fn store_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl BlobStore {
    /// The store at `dir`, created if missing; `None`: a temporary store
    /// for this run alone.
    pub fn open(dir: Option<&Path>) -> Result<BlobStore, StoreError> {
        let (root, scratch) = match dir {
            Some(dir) => (dir.to_owned(), None),
            None => {
                let temp = std::env::temp_dir();
                let scratch = tempfile::Builder::new()
                    .prefix("outport-blobs-")
                    .tempdir()
                    .map_err(|e| store_error(&temp, e))?;
                (scratch.path().to_owned(), Some(scratch))
            }
        };
        for sub in ["blobs/sha256", "tmp"] {
            let path = root.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| store_error(&path, e))?;
        }
        Ok(BlobStore {
            inner: Arc::new(Inner {
                root,
                _scratch: scratch,
            }),
        })
    }

    fn path(&self, digest: &Sha256Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

    fn lock_with(&self, operation: FlockOperation) -> Result<File, StoreError> {
        let path = self.inner.root.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| store_error(&path, e))?;
        flock(&file, operation).map_err(|e| store_error(&path, e.into()))?;
        Ok(file)
    }

    /// Waits for a shared lock: no pruning while it is held.
    pub fn lock_shared(&self) -> Result<SharedLock, StoreError> {
        Ok(SharedLock {
            _file: self.lock_with(FlockOperation::LockShared)?,
        })
    }

    /// Whether the store holds `digest`, `size` bytes long; marks it used.
    pub fn has(&self, digest: &Sha256Digest, size: u64) -> bool {
        self.open_blob(digest, size).is_some()
    }

    /// The stored blob `digest`, if there and `size` bytes long, marked
    /// used (its modification time set to now).
    pub fn open_blob(&self, digest: &Sha256Digest, size: u64) -> Option<File> {
        let file = File::open(self.path(digest)).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() != size {
            return None;
        }
        // Read-only files of another user may refuse: then not marked.
        let _ = touch(&file);
        Some(file)
    }

    /// Stores `bytes`, whose digest the caller computed, unless there.
    pub fn put(&self, digest: &Sha256Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has(digest, bytes.len() as u64) {
            return Ok(());
        }
        let mut temp = self.temp()?;
        temp.write(bytes)?;
        temp.keep(digest).map(drop)
    }

    /// A new temporary blob.
    pub fn temp(&self) -> Result<TempBlob, StoreError> {
        let dir = self.inner.root.join("tmp");
        let file = tempfile::NamedTempFile::new_in(&dir).map_err(|e| store_error(&dir, e))?;
        Ok(TempBlob {
            file,
            store: self.clone(),
        })
    }

    /// Reads the image whose root (an index or manifest of `media_type`,
    /// `size` bytes) is `root` from the store, as an OCI layout; `display`
    /// names it. Every index, manifest and config must be in the store;
    /// layers that are not are fetched by `fetch` when first read.
    pub fn open_image(
        &self,
        root: &Sha256Digest,
        media_type: &str,
        size: u64,
        display: &str,
        fetch: Arc<dyn Fetch>,
    ) -> Result<Image, StoreError> {
        let tmp = self.inner.root.join("tmp");
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
        std::os::unix::fs::symlink(self.inner.root.join("blobs"), &blobs)
            .map_err(|e| store_error(&blobs, e))?;
        // The blobs hold their files open: the layout can go at once.
        Ok(outport_image::open_path_fetching(
            layout.path(),
            display,
            None,
            fetch,
        )?)
    }

    /// Removes least recently used blobs until the store holds at most
    /// `max` bytes, never one of `keep`; waits for the runs reading the
    /// store's documents. Returns the bytes removed.
    pub fn prune(&self, max: u64, keep: &HashSet<String>) -> Result<u64, StoreError> {
        let _lock = self.lock_with(FlockOperation::LockExclusive)?;
        let dir = self.inner.root.join("blobs/sha256");
        let mut blobs = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| store_error(&dir, e))? {
            let entry = entry.map_err(|e| store_error(&dir, e))?;
            let Ok(meta) = entry.metadata() else {
                continue; // removed meanwhile
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_file() {
                let used = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                blobs.push((used, meta.len(), name));
            }
        }
        let mut total: u64 = blobs.iter().map(|b| b.1).sum();
        blobs.sort();
        let mut removed = 0;
        for (_, len, name) in blobs {
            if total <= max {
                break;
            }
            if keep.contains(&name) {
                continue;
            }
            let path = dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    removed += len;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
                Err(e) => return Err(store_error(&path, e)),
            }
        }
        Ok(removed)
    }
}

/// Sets `file`'s modification time to now.
fn touch(file: &File) -> std::io::Result<()> {
    file.set_modified(std::time::SystemTime::now())
}

impl TempBlob {
    /// Appends `data`, in writes of at most [`outport_image::WRITE_SIZE`]
    /// bytes, not in the pieces the HTTP client hands over (408 KiB): on
    /// the development VM a cold `docker://` export of 464 MB took 0.88
    /// and 1.01 s (medians of two series of five) against 1.03 and 1.50 s
    /// (docs/benchmark.md; why: `outport_image`'s `pieces`).
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let written = SmallWrites(self.file.as_file_mut()).write_all(data);
        written.map_err(|e| store_error(self.file.path(), e))
    }

    /// Empties the file, to write the blob again from its start.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let path = self.file.path().to_owned();
        let file = self.file.as_file_mut();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .map_err(|e| store_error(&path, e))
    }

    /// Puts the blob, checked by the caller to be `digest`, in place; the
    /// file, open, so that a concurrent prune cannot take it first.
    pub fn keep(self, digest: &Sha256Digest) -> Result<File, StoreError> {
        let target = self.store.path(digest);
        self.file
            .persist(&target)
            .map_err(|e| store_error(&target, e.error))
    }
}
