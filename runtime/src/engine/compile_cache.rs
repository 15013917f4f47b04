//! The on-disk compile cache, whose entries only this host can vouch for.
//!
//! wasmtime loads a cached artifact as trusted native code, so an entry is
//! used only when it carries an HMAC-SHA256, under a secret key kept in
//! the cache directory (`.key`, 32 random bytes, mode 0600), of its cache
//! key and its bytes. Whoever can write entries but not read that key
//! cannot forge one, nor move a genuine entry under another component's
//! key. An entry is one file, `<key>.entry` (the MAC, then the artifact),
//! written to a temporary file and renamed into place.
//!
//! A cache that cannot be trusted (the directory writable by others or
//! owned by someone else, the key file readable or writable by anyone but
//! its owner, or owned by someone else) is not used: caching is off for the
//! run, with a warning.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file's name in the cache directory.
const KEY_FILE: &str = ".key";

/// Length of the secret key and of a MAC.
const KEY_LEN: usize = 32;

/// What the MAC covers before the cache key and the artifact, so it means
/// nothing anywhere else.
const DOMAIN: &[u8] = b"outport compile cache entry\0";

/// An open, trusted compile cache.
pub struct CompileCache {
    dir: PathBuf,
    /// HMAC-SHA256 keyed with the secret, cloned for each entry.
    keyed: Hmac<Sha256>,
}

impl CompileCache {
    /// Opens the cache in `dir` (created, mode 0700, when missing) and its
    /// key (created when missing); `None`, after a warning saying why and
    /// that caching is off, when either cannot be trusted.
    pub fn open(dir: &Path) -> Option<CompileCache> {
        match Self::try_open(dir) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!(
                    "compile cache {}: {e}; compiled components are not cached",
                    dir.display()
                );
                None
            }
        }
    }

    fn try_open(dir: &Path) -> Result<CompileCache, CacheError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("cannot create it".into()))?;
        let meta = std::fs::metadata(dir).map_err(io("cannot read it".into()))?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(CacheError::Untrusted(format!(
                "it is owned by user {}, not by this user",
                meta.uid()
            )));
        }
        if meta.mode() & 0o002 != 0 {
            return Err(CacheError::Untrusted(format!(
                "it is writable by others (mode {:o})",
                meta.mode() & 0o7777
            )));
        }
        let secret = read_or_create_key(&dir.join(KEY_FILE), me)?;
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&secret)
            .map_err(|e| CacheError::Untrusted(format!("cannot use its key: {e}")))?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            keyed,
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact cached under `key`, its MAC checked: `None` without an
    /// entry, or (after a warning) when the entry does not verify.
    pub fn load(&self, key: &str) -> Option<Vec<u8>> {
        let mut bytes = match std::fs::read(self.entry(key)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("compile cache entry {key}: cannot read it: {e}; recompiling");
                return None;
            }
        };
        let verified = bytes.len() >= KEY_LEN && {
            let (tag, artifact) = bytes.split_at(KEY_LEN);
            self.mac(key, artifact).verify_slice(tag).is_ok()
        };
        if !verified {
            tracing::warn!(
                "compile cache entry {key} is not signed with this cache's key; recompiling"
            );
            return None;
        }
        bytes.drain(..KEY_LEN);
        Some(bytes)
    }

    /// Stores `artifact` under `key` with its MAC, atomically replacing
    /// any entry there.
    pub fn store(&self, key: &str, artifact: &[u8]) -> Result<(), CacheError> {
        let tag = self.mac(key, artifact).finalize().into_bytes();
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(&tag)?;
            tmp.write_all(artifact)?;
            tmp.persist(self.entry(key))?;
            Ok(())
        };
        write().map_err(io(format!("cannot store entry {key}")))
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.entry"))
    }

    /// The MAC of `artifact` stored under `key`, before finalising.
    fn mac(&self, key: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(DOMAIN);
        mac.update(key.as_bytes());
        mac.update(b"\0");
        mac.update(artifact);
        mac
    }
}

/// Why the compile cache cannot be used, or an entry not stored.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory or its key cannot be trusted (owner, mode, size).
    #[error("{0}")]
    Untrusted(String),
    /// Reading or writing the directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// An I/O error while doing `what`.
fn io(what: String) -> impl FnOnce(std::io::Error) -> CacheError {
    move |source| CacheError::Io { what, source }
}

/// The secret key in `path`, checked (a regular file of [`KEY_LEN`] bytes
/// owned by `owner`, no access for group or others), or a new one: written
/// to a temporary file (created exclusively, mode 0600) and linked into
/// place only if no key is there yet, so concurrent runs agree on one key.
fn read_or_create_key(path: &Path, owner: u32) -> Result<[u8; KEY_LEN], CacheError> {
    match std::fs::File::open(path) {
        Ok(file) => return read_key(path, file, owner),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("cannot read its key {}", path.display()))(e)),
    }
    let mut secret = [0u8; KEY_LEN];
    getrandom::fill(&mut secret)
        .map_err(|e| io("cannot make a key".into())(std::io::Error::other(e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let created = tempfile::NamedTempFile::new_in(dir)
        .and_then(|mut tmp| {
            tmp.write_all(&secret)?;
            tmp.as_file().sync_all()?;
            Ok(tmp)
        })
        .map_err(io("cannot write its key".into()))?;
    match created.persist_noclobber(path) {
        Ok(_) => Ok(secret),
        // Another run made one first: use that.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            let file = std::fs::File::open(path)
                .map_err(io(format!("cannot read its key {}", path.display())))?;
            read_key(path, file, owner)
        }
        Err(e) => Err(io("cannot write its key".into())(e.error)),
    }
}

fn read_key(path: &Path, mut file: std::fs::File, owner: u32) -> Result<[u8; KEY_LEN], CacheError> {
    let meta = file
        .metadata()
        .map_err(io(format!("cannot read its key {}", path.display())))?;
    if meta.uid() != owner {
        return Err(CacheError::Untrusted(format!(
            "its key {} is owned by user {}, not by this user",
            path.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(CacheError::Untrusted(format!(
            "its key {} may be read or written by group or others (mode {:o}; it must be 600)",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    let mut secret = [0u8; KEY_LEN];
    let mut rest = Vec::new();
    let read = file
        .read_exact(&mut secret)
        .and_then(|()| file.read_to_end(&mut rest));
    match read {
        Ok(0) if meta.is_file() => Ok(secret),
        _ => Err(CacheError::Untrusted(format!(
            "its key {} is not a file of {KEY_LEN} bytes",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn an_entry_verifies_only_under_its_key_and_secret() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let cache = CompileCache::open(&dir).unwrap();
        cache.store("a", b"artifact").unwrap();
        assert_eq!(cache.load("a").as_deref(), Some(&b"artifact"[..]));
        assert_eq!(cache.load("b"), None);
        std::fs::copy(dir.join("a.entry"), dir.join("b.entry")).unwrap();
        assert_eq!(cache.load("b"), None, "moved under another key");

        let again = CompileCache::open(&dir).unwrap();
        assert_eq!(again.load("a").as_deref(), Some(&b"artifact"[..]));
        std::fs::write(dir.join(KEY_FILE), [7u8; KEY_LEN]).unwrap();
        let other = CompileCache::open(&dir).unwrap();
        assert_eq!(other.load("a"), None, "another secret");

        let key = std::fs::metadata(dir.join(KEY_FILE)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn an_untrusted_directory_or_key_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        CompileCache::open(&dir).unwrap();
        let key = dir.join(KEY_FILE);
        for mode in [0o640, 0o604, 0o620] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = CompileCache::try_open(&dir).err().unwrap().to_string();
            assert!(e.contains("group or others"), "{e}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&key, b"short").unwrap();
        let e = CompileCache::try_open(&dir).err().unwrap().to_string();
        assert!(e.contains("not a file of 32 bytes"), "{e}");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = CompileCache::try_open(&dir).err().unwrap().to_string();
        assert!(e.contains("writable by others (mode 777)"), "{e}");
    }
}
