//! Changing OCI layouts on disk: [`Layout`].

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::json::{array_at, digest_hex, sha256_digest};
use super::layout::LayoutFiles;
use super::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST};

/// An OCI layout directory that a test changes (always a copy).
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn open(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Reads the layout as it is now.
    #[track_caller]
    pub fn files(&self) -> LayoutFiles {
        LayoutFiles::from_dir(&self.dir)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest_hex(digest))
    }

    #[track_caller]
    pub fn write_index_json(&self, index: &Value) {
        let path = self.dir.join("index.json");
        fs::write(
            &path,
            serde_json::to_vec(index).expect("serialize index.json"),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Stores `bytes` as a blob; returns its digest and size.
    #[track_caller]
    pub fn add_blob(&self, bytes: &[u8]) -> (String, u64) {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        (digest, bytes.len() as u64)
    }

    /// Flips every bit of the byte in the middle of a blob (same size, other
    /// content, so its digest no longer matches).
    #[track_caller]
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        let mut bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    #[track_caller]
    pub fn remove_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }

    /// Rewrites the JSON blob `digest` with `edit`, stores the result as a new
    /// blob, and re-links its parents: every index or manifest reachable
    /// from `index.json` that refers to it (and so on up to `index.json`)
    /// gets the new digest and size, so the layout is consistent but for what
    /// `edit` did. Returns the new digest. The old blobs stay, unreferenced.
    #[track_caller]
    pub fn rewrite_json_blob(&self, digest: &str, edit: impl FnOnce(&mut Value)) -> String {
        let files = self.files();
        let mut value = files.blob_json(digest);
        edit(&mut value);
        let bytes = serde_json::to_vec(&value).expect("serialize a JSON blob");
        let (new_digest, size) = self.add_blob(&bytes);
        if new_digest != digest {
            self.relink(digest, &new_digest, size);
        }
        new_digest
    }

    /// Points every reference to blob `old` at `new` (of `size` bytes).
    #[track_caller]
    fn relink(&self, old: &str, new: &str, size: u64) {
        let parents = self.parents_of(old);
        let mut index = self.files().index_json();
        if relink_descriptors(&mut index, old, new, size) {
            self.write_index_json(&index);
        }
        for parent in parents {
            self.rewrite_json_blob(&parent, |value| {
                relink_descriptors(value, old, new, size);
            });
        }
    }

    /// The indexes and manifests, reachable from `index.json`, that have a
    /// descriptor of `child`.
    fn parents_of(&self, child: &str) -> Vec<String> {
        let files = self.files();
        let mut pending: Vec<Value> = array_at(&files.index_json(), "manifests").clone();
        let mut seen = BTreeSet::new();
        let mut parents = Vec::new();
        while let Some(desc) = pending.pop() {
            let Some(digest) = desc["digest"].as_str() else {
                continue;
            };
            let media_type = desc["mediaType"].as_str().unwrap_or_default();
            let is_index = media_type == MT_INDEX || media_type == MT_DOCKER_LIST;
            let is_manifest = media_type == MT_MANIFEST || media_type == MT_DOCKER_MANIFEST;
            if !(is_index || is_manifest) || !seen.insert(digest.to_owned()) {
                continue;
            }
            let Some(bytes) = files
                .files
                .get(&format!("blobs/sha256/{}", digest_hex(digest)))
            else {
                continue;
            };
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            let mut children: Vec<Value> = Vec::new();
            if is_index {
                children.extend(value["manifests"].as_array().into_iter().flatten().cloned());
            } else {
                children.push(value["config"].clone());
                children.extend(value["layers"].as_array().into_iter().flatten().cloned());
            }
            if children.iter().any(|c| c["digest"] == child) {
                parents.push(digest.to_owned());
            }
            pending.extend(children);
        }
        parents
    }
}

/// Sets `digest` and `size` of every object in `value` whose digest is `old`.
/// Returns whether anything changed.
fn relink_descriptors(value: &mut Value, old: &str, new: &str, size: u64) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            if map.get("digest").and_then(Value::as_str) == Some(old) {
                map.insert("digest".to_owned(), json!(new));
                map.insert("size".to_owned(), json!(size));
                changed = true;
            }
            for child in map.values_mut() {
                changed |= relink_descriptors(child, old, new, size);
            }
        }
        Value::Array(items) => {
            for child in items {
                changed |= relink_descriptors(child, old, new, size);
            }
        }
        _ => {}
    }
    changed
}
