//! Tarballs: packing a layout, cutting one, writing a `docker save`.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::json::{array_at, digest_hex, parse_json, sha256_digest, str_at};
use super::layout::LayoutFiles;
use super::paths::sample_image;

/// Appends a regular file (mode 0644, mtime 0, root) to a tar.
fn append_file<W: std::io::Write>(builder: &mut tar::Builder<W>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, path, data)
        .unwrap_or_else(|e| panic!("add {path} to a tar: {e}"));
}

/// Appends a directory entry (mode 0755) to a tar.
fn append_dir<W: std::io::Write>(builder: &mut tar::Builder<W>, path: &str) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, path, std::io::empty())
        .unwrap_or_else(|e| panic!("add {path} to a tar: {e}"));
}

/// Packs an OCI layout directory into an OCI archive at `tar_path`:
/// `oci-layout` and `index.json` first, then `blobs/`, `blobs/sha256/` and
/// the blobs in name order; blob `last`, if given, comes last.
#[track_caller]
pub fn pack_tar(dir: &Path, tar_path: &Path, last: Option<&str>) {
    let files = LayoutFiles::from_dir(dir);
    let last_path = last.map(|digest| format!("blobs/sha256/{}", digest_hex(digest)));
    if let Some(path) = &last_path {
        assert!(
            files.files.contains_key(path),
            "no {path} in {}",
            dir.display()
        );
    }
    let mut order: Vec<&String> = Vec::new();
    for first in ["oci-layout", "index.json"] {
        order.extend(files.files.keys().filter(|path| *path == first));
    }
    order.extend(files.files.keys().filter(|path| {
        path.as_str() != "oci-layout"
            && path.as_str() != "index.json"
            && Some(path.as_str()) != last_path.as_deref()
    }));
    order.extend(
        files
            .files
            .keys()
            .filter(|path| Some(path.as_str()) == last_path.as_deref()),
    );

    let file =
        fs::File::create(tar_path).unwrap_or_else(|e| panic!("create {}: {e}", tar_path.display()));
    let mut builder = tar::Builder::new(file);
    let mut dirs_done = false;
    for path in order {
        if path.starts_with("blobs/") && !dirs_done {
            append_dir(&mut builder, "blobs/");
            append_dir(&mut builder, "blobs/sha256/");
            dirs_done = true;
        }
        append_file(&mut builder, path, &files.files[path]);
    }
    builder
        .into_inner()
        .expect("finish the tar")
        .sync_all()
        .expect("sync the tar");
}

/// Cuts the tarball at `tar_path` in the middle of blob `digest`'s data.
#[track_caller]
pub fn truncate_in_blob(tar_path: &Path, digest: &str) {
    let wanted = format!("blobs/sha256/{}", digest_hex(digest));
    let file =
        fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(file);
    let mut cut = None;
    for entry in archive.entries().expect("read the tar") {
        let entry = entry.expect("read a tar entry");
        let path = entry.path().expect("a tar entry path").into_owned();
        let path = path.to_str().expect("a UTF-8 tar path");
        if path.strip_prefix("./").unwrap_or(path) == wanted {
            let size = entry.size();
            assert!(size >= 2, "blob {digest} is too small to cut in half");
            cut = Some(entry.raw_file_position() + size / 2);
        }
    }
    let cut = cut.unwrap_or_else(|| panic!("no {wanted} in {}", tar_path.display()));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(tar_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    file.set_len(cut).expect("truncate the tar");
}

/// What [`docker_save_tar`] wrote.
pub struct DockerSave {
    /// The config's digest (`<hex>.json` in the tarball).
    pub config_digest: String,
    /// The uncompressed layers' digests (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
}

/// Writes a legacy `docker save` tarball of the sample's `arch` image at
/// `tar_path`: `<layer id>/{VERSION,json,layer.tar}` with the layers
/// uncompressed, `<config hex>.json`, `manifest.json` (tag
/// `outport/sample:latest`) and `repositories`.
#[track_caller]
pub fn docker_save_tar(arch: &str, tar_path: &Path) -> DockerSave {
    let sample = LayoutFiles::from_dir(&sample_image());
    let manifest = sample.manifest(arch);
    let config_digest = str_at(&manifest["config"], "digest").to_owned();
    let config = sample.blob(&config_digest);
    let diff_ids: Vec<String> = array_at(&parse_json("config", config)["rootfs"], "diff_ids")
        .iter()
        .map(|id| id.as_str().expect("a diff ID").to_owned())
        .collect();

    let file =
        fs::File::create(tar_path).unwrap_or_else(|e| panic!("create {}: {e}", tar_path.display()));
    let mut builder = tar::Builder::new(file);
    let mut layer_paths = Vec::new();
    let mut parent: Option<String> = None;
    for (n, layer) in array_at(&manifest, "layers").iter().enumerate() {
        let digest = str_at(layer, "digest");
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(sample.blob(digest))
            .read_to_end(&mut tar_bytes)
            .unwrap_or_else(|e| panic!("gunzip layer {digest}: {e}"));
        assert_eq!(
            sha256_digest(&tar_bytes),
            diff_ids[n],
            "layer {n} of the sample does not match its diff ID"
        );
        // A v1 layer ID, as `docker save` names the layer directories.
        let id = hex::encode(Sha256::digest(
            format!("{}\n{}", parent.as_deref().unwrap_or(""), diff_ids[n]).as_bytes(),
        ));
        let mut v1 = json!({ "id": id, "created": "2024-01-01T00:00:00Z" });
        if let Some(parent) = &parent {
            v1["parent"] = json!(parent);
        }
        append_dir(&mut builder, &format!("{id}/"));
        append_file(&mut builder, &format!("{id}/VERSION"), b"1.0");
        append_file(
            &mut builder,
            &format!("{id}/json"),
            &serde_json::to_vec(&v1).expect("serialize"),
        );
        append_file(&mut builder, &format!("{id}/layer.tar"), &tar_bytes);
        layer_paths.push(format!("{id}/layer.tar"));
        parent = Some(id);
    }
    let config_file = format!("{}.json", digest_hex(&config_digest));
    append_file(&mut builder, &config_file, config);
    let manifest_json = json!([{
        "Config": config_file,
        "RepoTags": ["outport/sample:latest"],
        "Layers": layer_paths,
    }]);
    append_file(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest_json).expect("serialize"),
    );
    let repositories = json!({ "outport/sample": { "latest": parent.expect("a layer") } });
    append_file(
        &mut builder,
        "repositories",
        &serde_json::to_vec(&repositories).expect("serialize"),
    );
    builder
        .into_inner()
        .expect("finish the tar")
        .sync_all()
        .expect("sync the tar");
    DockerSave {
        config_digest,
        diff_ids,
    }
}

/// Deterministic pseudo-random bytes (not an image in any format).
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
