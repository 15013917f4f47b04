//! Builds small images for the tests: OCI layout directories with tiny
//! uncompressed layers, packed as OCI archives, legacy docker saves or
//! Docker 25+ saves.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::sha256_digest;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A blob written under `blobs/sha256/`.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) digest: String,
    pub(crate) size: u64,
}

impl Written {
    pub(crate) fn hex(&self) -> &str {
        &self.digest["sha256:".len()..]
    }

    pub(crate) fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.size})
    }
}

/// One single-platform image of a fixture.
#[derive(Debug, Clone)]
pub(crate) struct Img {
    pub(crate) arch: String,
    pub(crate) manifest: Written,
    pub(crate) config: Written,
    pub(crate) layer: Written,
    pub(crate) layer_bytes: Vec<u8>,
}

/// A temporary directory holding an OCI layout at `dir` (plus room for archives).
pub(crate) struct Fixture {
    pub(crate) tmp: TempDir,
    pub(crate) dir: PathBuf,
}

impl Fixture {
    /// An OCI layout with an empty `blobs/sha256/` and no index.json yet.
    pub(crate) fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("img");
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Fixture { tmp, dir }
    }

    /// The layout directory as an input string.
    pub(crate) fn path(&self) -> String {
        self.dir.to_str().unwrap().to_owned()
    }

    /// A path next to the layout, for archives.
    pub(crate) fn out(&self, name: &str) -> String {
        self.tmp.path().join(name).to_str().unwrap().to_owned()
    }

    /// The path of a blob file.
    pub(crate) fn blob_path(&self, w: &Written) -> PathBuf {
        self.dir.join("blobs/sha256").join(w.hex())
    }

    pub(crate) fn add_blob(&self, data: &[u8]) -> Written {
        let digest = sha256_digest(data);
        let w = Written {
            digest,
            size: data.len() as u64,
        };
        fs::write(self.blob_path(&w), data).unwrap();
        w
    }

    /// An image for `arch` whose one layer is a tar holding `content`.
    pub(crate) fn add_image(&self, arch: &str, content: &[u8]) -> Img {
        self.add_image_with_layer(arch, tiny_layer(content))
    }

    /// An image for `arch` whose one layer is `layer_bytes`.
    pub(crate) fn add_image_with_layer(&self, arch: &str, layer_bytes: Vec<u8>) -> Img {
        let layer = self.add_blob(&layer_bytes);
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        });
        let config = self.add_blob(&serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": [layer.descriptor(OCI_LAYER)],
        });
        let manifest = self.add_blob(&serde_json::to_vec(&manifest).unwrap());
        Img {
            arch: arch.to_owned(),
            manifest,
            config,
            layer,
            layer_bytes,
        }
    }

    /// Writes index.json listing `entries`.
    pub(crate) fn write_index(&self, entries: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// The standard fixture: two platforms, index.json is the multi-platform index.
    pub(crate) fn multi_platform() -> (Fixture, Vec<Img>) {
        let f = Fixture::new();
        let imgs = vec![
            f.add_image("amd64", b"hello amd64\n"),
            f.add_image("arm64", b"hello arm64\n"),
        ];
        f.write_index(imgs.iter().map(|i| entry(i, &[], true)).collect());
        (f, imgs)
    }

    /// Packs the layout directory as an uncompressed tar at `out`.
    pub(crate) fn pack(&self, out: &str) {
        let mut b = tar::Builder::new(fs::File::create(out).unwrap());
        b.append_dir_all(".", &self.dir).unwrap();
        b.finish().unwrap();
    }

    /// Packs `images` (each with its RepoTags) as a legacy docker save at
    /// `out`; a layer already written for an earlier image is a symlink.
    pub(crate) fn pack_legacy(&self, out: &str, images: &[(&[&str], &Img)]) {
        let mut b = tar::Builder::new(fs::File::create(out).unwrap());
        let mut manifest = Vec::new();
        let mut written: Vec<String> = Vec::new();
        for (n, (tags, img)) in images.iter().enumerate() {
            let config = fs::read(self.blob_path(&img.config)).unwrap();
            let config_name = format!("{}.json", img.config.hex());
            append(&mut b, &config_name, &config);
            let layer_id = format!("{:0>64}", n + 1);
            let layer_name = format!("{layer_id}/layer.tar");
            if let Some(first) = written.iter().find(|w| w.ends_with(img.layer.hex())) {
                let first_id = &first[..64];
                symlink(&mut b, &layer_name, &format!("../{first_id}/layer.tar"));
            } else {
                append(&mut b, &layer_name, &img.layer_bytes);
                written.push(format!("{layer_id}{}", img.layer.hex()));
            }
            manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": [layer_name]}));
        }
        append(
            &mut b,
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        b.finish().unwrap();
    }

    /// Packs the layout plus a `manifest.json` as Docker 25+ does.
    pub(crate) fn pack_docker25(&self, out: &str, images: &[(&str, &Img)]) {
        let manifest: Vec<Value> = images
            .iter()
            .map(|(tag, img)| {
                json!({
                    "Config": format!("blobs/sha256/{}", img.config.hex()),
                    "RepoTags": [tag],
                    "Layers": [format!("blobs/sha256/{}", img.layer.hex())],
                })
            })
            .collect();
        fs::write(
            self.dir.join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        self.pack(out);
    }
}

/// An index.json entry for `img`, with annotations and optionally its platform.
pub(crate) fn entry(img: &Img, annotations: &[(&str, &str)], platform: bool) -> Value {
    let mut e = img.manifest.descriptor(OCI_MANIFEST);
    if platform {
        e["platform"] = json!({"architecture": img.arch, "os": "linux"});
    }
    if !annotations.is_empty() {
        let map: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        e["annotations"] = Value::Object(map);
    }
    e
}

/// A tar holding one file `hello.txt` with `content`.
pub(crate) fn tiny_layer(content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, "hello.txt", content);
    b.into_inner().unwrap()
}

fn append<W: std::io::Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

fn symlink<W: std::io::Write>(b: &mut tar::Builder<W>, name: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, name, target).unwrap();
}

/// Overwrites `path` with `data`.
pub(crate) fn rewrite(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap();
}

/// `data` gzipped (fast level).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
