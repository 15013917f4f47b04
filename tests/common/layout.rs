//! Reading OCI layouts (directories and tarballs): [`LayoutFiles`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::json::{array_at, digest_hex, parse_json, sha256_digest, str_at};
use super::{MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_INDEX, MT_MANIFEST};

/// The regular files of an OCI image layout, read into memory: relative
/// path (`index.json`, `blobs/sha256/<hex>`) -> bytes.
pub struct LayoutFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl LayoutFiles {
    #[track_caller]
    pub fn from_dir(dir: &Path) -> LayoutFiles {
        assert!(dir.is_dir(), "{} is not a directory", dir.display());
        let mut files = BTreeMap::new();
        read_tree(dir, dir, &mut files);
        LayoutFiles { files }
    }

    #[track_caller]
    pub fn from_tar(path: &Path) -> LayoutFiles {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        LayoutFiles::from_tar_bytes(&bytes)
    }

    /// Reads a tarball's regular files (a leading `./` is dropped). Panics on
    /// a malformed tar or a duplicate path.
    #[track_caller]
    pub fn from_tar_bytes(bytes: &[u8]) -> LayoutFiles {
        let mut archive = tar::Archive::new(bytes);
        let mut files = BTreeMap::new();
        for entry in archive.entries().expect("read the tar") {
            let mut entry = entry.expect("read a tar entry");
            let kind = entry.header().entry_type();
            let path = entry.path().expect("a tar entry path").into_owned();
            let path = path.to_str().expect("a UTF-8 tar path");
            let path = path.strip_prefix("./").unwrap_or(path).to_owned();
            if kind.is_dir() {
                continue;
            }
            assert!(
                kind.is_file(),
                "unexpected tar entry type {kind:?} for {path}"
            );
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .expect("read a tar entry's data");
            assert!(
                files.insert(path.clone(), data).is_none(),
                "{path} is twice in the tar"
            );
        }
        LayoutFiles { files }
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> &[u8] {
        self.files.get(path).unwrap_or_else(|| {
            panic!(
                "no {path} in the layout; it holds {:?}",
                self.files.keys().collect::<Vec<_>>()
            )
        })
    }

    #[track_caller]
    pub fn index_json(&self) -> Value {
        parse_json("index.json", self.get("index.json"))
    }

    /// The one entry of `index.json` (panics unless there is exactly one).
    #[track_caller]
    pub fn root(&self) -> Value {
        let index = self.index_json();
        let entries = array_at(&index, "manifests");
        assert_eq!(
            entries.len(),
            1,
            "index.json should have one entry: {index}"
        );
        entries[0].clone()
    }

    #[track_caller]
    pub fn blob(&self, digest: &str) -> &[u8] {
        self.get(&format!("blobs/sha256/{}", digest_hex(digest)))
    }

    #[track_caller]
    pub fn blob_json(&self, digest: &str) -> Value {
        parse_json(&format!("blob {digest}"), self.blob(digest))
    }

    /// The digests of all blobs in `blobs/sha256/`.
    pub fn blob_digests(&self) -> BTreeSet<String> {
        self.files
            .keys()
            .filter_map(|path| path.strip_prefix("blobs/sha256/"))
            .map(|hex| format!("sha256:{hex}"))
            .collect()
    }

    /// The descriptor, in the root index, of the image manifest for `arch`.
    #[track_caller]
    pub fn manifest_descriptor(&self, arch: &str) -> Value {
        let root = self.root();
        let index = self.blob_json(str_at(&root, "digest"));
        array_at(&index, "manifests")
            .iter()
            .find(|desc| desc["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} manifest in {index}"))
            .clone()
    }

    /// The image manifest for `arch` in the root index.
    #[track_caller]
    pub fn manifest(&self, arch: &str) -> Value {
        self.blob_json(str_at(&self.manifest_descriptor(arch), "digest"))
    }

    /// Checks the layout is complete and consistent: `oci-layout` says
    /// 1.0.0; every blob's name is its sha256; every descriptor reachable
    /// from `index.json` names a blob that exists with that size.
    #[track_caller]
    pub fn verify(&self) {
        let oci_layout = parse_json("oci-layout", self.get("oci-layout"));
        assert_eq!(
            oci_layout["imageLayoutVersion"], "1.0.0",
            "oci-layout: {oci_layout}"
        );
        for (path, bytes) in &self.files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(
                    digest_hex(&sha256_digest(bytes)),
                    hex,
                    "blob {path} does not hash to its name"
                );
            }
        }
        let index = self.index_json();
        let mut pending: Vec<Value> = array_at(&index, "manifests").clone();
        assert!(!pending.is_empty(), "index.json lists no image: {index}");
        let mut seen = BTreeSet::new();
        while let Some(desc) = pending.pop() {
            let digest = str_at(&desc, "digest").to_owned();
            let bytes = self.blob(&digest);
            assert_eq!(
                Some(bytes.len() as u64),
                desc["size"].as_u64(),
                "blob {digest} has a size other than its descriptor's: {desc}"
            );
            if !seen.insert(digest.clone()) {
                continue;
            }
            let media_type = str_at(&desc, "mediaType");
            if media_type == MT_INDEX || media_type == MT_DOCKER_LIST {
                let index = parse_json(&digest, bytes);
                pending.extend(array_at(&index, "manifests").iter().cloned());
            } else if media_type == MT_MANIFEST || media_type == MT_DOCKER_MANIFEST {
                let manifest = parse_json(&digest, bytes);
                pending.push(manifest["config"].clone());
                pending.extend(array_at(&manifest, "layers").iter().cloned());
            }
        }
    }
}

/// Recursively lists the regular files under `dir`: relative path -> bytes.
fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let entry = entry.expect("read a directory entry");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            read_tree(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("a path under the root")
                .to_str()
                .expect("a UTF-8 path")
                .to_owned();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            files.insert(rel, bytes);
        }
    }
}
