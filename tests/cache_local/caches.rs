//! Caches for the tests: a BuildKit-shaped cache directory, `outport cache
//! export|import` and `--export-cache` runs, reading a written cache back,
//! and the check of a backend's documentation against `describe()`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::MT_CACHE_CONFIG;
use crate::common::*;

/// A BuildKit local cache directory written by [`buildkit_cache`].
pub(crate) struct BuildkitCache {
    pub(crate) dir: PathBuf,
    pub(crate) config: Vec<u8>,
    /// Layer digests: base, its child, and a side layer only an
    /// intermediate record names.
    pub(crate) layers: Vec<String>,
}

/// Writes, in `parent/name`, a cache exactly as BuildKit's local cache
/// exporter lays it out: `oci-layout`, `index.json` with one entry tagged
/// `latest`, and `blobs/sha256/`: three layers, the cache config and either
/// an image manifest holding it as config (`image_manifest`) or an index
/// listing the layers and then the config. Its records: a base step, a step
/// on it (the final one), and an intermediate step whose result is the side
/// layer (kept by `mode=max` only).
pub(crate) fn buildkit_cache(parent: &Path, name: &str, image_manifest: bool) -> BuildkitCache {
    buildkit_cache_sized(parent, name, image_manifest, 1000)
}

/// [`buildkit_cache`] with layers of about `layer_bytes` bytes each.
pub(crate) fn buildkit_cache_sized(
    parent: &Path,
    name: &str,
    image_manifest: bool,
    layer_bytes: usize,
) -> BuildkitCache {
    let dir = mkdir(parent, name);
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let layout = Layout::open(&dir);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let blobs: Vec<(String, u64)> = (0..3)
        .map(|i| layout.add_blob(&noise(layer_bytes + i * 100)[i..]))
        .collect();
    let layers: Vec<String> = blobs.iter().map(|(d, _)| d.clone()).collect();
    let key = |s: &str| sha256_digest(s.as_bytes());
    let created = "2024-01-02T03:04:05.000000006Z";
    let config = json!({
        "layers": [
            {"blob": layers[0], "parent": -1},
            {"blob": layers[1], "parent": 0},
            {"blob": layers[2], "parent": 0},
        ],
        "records": [
            {"digest": key("base"), "layers": [{"layer": 0, "createdAt": created}]},
            {"digest": key("step"), "layers": [{"layer": 1, "createdAt": created}],
             "inputs": [[{"selector": "", "link": 0}], [{"link": 2}]]},
            {"digest": key("side"), "layers": [{"layer": 2, "createdAt": created}],
             "inputs": [[{"link": 0}]]},
        ],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let (config_digest, config_size) = layout.add_blob(&config);
    let layer_descs: Vec<Value> = blobs
        .iter()
        .map(|(d, s)| json!({"mediaType": MT_LAYER_GZIP, "digest": d, "size": s}))
        .collect();
    let config_desc =
        json!({"mediaType": MT_CACHE_CONFIG, "digest": config_digest, "size": config_size});
    let (root_type, root) = if image_manifest {
        let doc = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config_desc, "layers": layer_descs});
        (MT_MANIFEST, doc)
    } else {
        let mut manifests = layer_descs;
        manifests.push(config_desc);
        let doc = json!({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests});
        (MT_INDEX, doc)
    };
    let (root_digest, root_size) = layout.add_blob(&serde_json::to_vec(&root).unwrap());
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{"mediaType": root_type, "digest": root_digest, "size": root_size,
                       "annotations": {ANN_REF_NAME: "latest"}}],
    }));
    BuildkitCache {
        dir,
        config,
        layers,
    }
}

/// `outport ARGS...` with `--export-cache SPEC` for each spec.
fn with_caches(mut args: Vec<String>, caches: &[String]) -> Run {
    for spec in caches {
        args.push("--export-cache".into());
        args.push(spec.clone());
    }
    outport(args)
}

/// `outport export SAMPLE --output OUTPUT --metadata-file METADATA
/// --export-cache SPEC...`.
pub(super) fn export_sample_with_caches(output: &str, metadata: &Path, caches: &[String]) -> Run {
    let args = vec![
        "export".into(),
        path_str(&sample_image()).into(),
        "--output".into(),
        output.into(),
        "--metadata-file".into(),
        path_str(metadata).into(),
    ];
    with_caches(args, caches)
}

/// `outport cache export INPUT --export-cache SPEC...`.
pub(crate) fn cache_export(input: &Path, caches: &[String]) -> Run {
    with_caches(
        vec!["cache".into(), "export".into(), path_str(input).into()],
        caches,
    )
}

/// `outport cache import --import-cache SPEC --dest DEST`.
pub(crate) fn cache_import(spec: &str, dest: &Path) -> Run {
    outport(cache_import_args(spec, dest))
}

/// The arguments of `outport cache import --import-cache SPEC --dest DEST`.
pub(crate) fn cache_import_args(spec: &str, dest: &Path) -> Vec<String> {
    [
        "cache",
        "import",
        "--import-cache",
        spec,
        "--dest",
        path_str(dest),
    ]
    .map(String::from)
    .to_vec()
}

/// A cache directory's `latest` entry: its root document (media type and
/// JSON), its cache config bytes and its layer digests, as the files say.
pub(crate) struct Written {
    pub(crate) root_type: String,
    pub(crate) config: Vec<u8>,
    pub(crate) layers: Vec<String>,
}

#[track_caller]
pub(crate) fn read_cache(dir: &Path, tag: &str) -> Written {
    let files = LayoutFiles::from_dir(dir);
    let index = files.index_json();
    let entry = array_at(&index, "manifests")
        .iter()
        .find(|e| e["annotations"][ANN_REF_NAME] == tag)
        .unwrap_or_else(|| panic!("no entry tagged {tag} in {index}"));
    let root_type = str_at(entry, "mediaType").to_owned();
    let root = files.blob_json(str_at(entry, "digest"));
    let (config, layers): (Vec<&Value>, Vec<&Value>) = if root_type == MT_MANIFEST {
        (
            vec![&root["config"]],
            array_at(&root, "layers").iter().collect(),
        )
    } else {
        array_at(&root, "manifests")
            .iter()
            .partition(|d| d["mediaType"] == MT_CACHE_CONFIG)
    };
    assert_eq!(config.len(), 1, "one cache config in {root}");
    assert_eq!(config[0]["mediaType"], MT_CACHE_CONFIG);
    Written {
        root_type,
        config: files.blob(str_at(config[0], "digest")).to_vec(),
        layers: layers
            .iter()
            .map(|l| str_at(l, "digest").to_owned())
            .collect(),
    }
}

/// The layer digests of the sample's image manifests, as its files say.
pub(super) fn sample_layers() -> Vec<String> {
    let files = LayoutFiles::from_dir(&sample_image());
    let mut layers = Vec::new();
    for arch in ["amd64", "arm64"] {
        for layer in array_at(&files.manifest(arch), "layers") {
            let digest = str_at(layer, "digest").to_owned();
            if !layers.contains(&digest) {
                layers.push(digest);
            }
        }
    }
    layers
}

/// Each blob file's (inode, mtime in ns).
pub(super) fn blob_stamps(dir: &Path) -> Vec<(String, u64, i64)> {
    dir_names(&dir.join("blobs/sha256"))
        .into_iter()
        .map(|name| {
            let meta = fs::metadata(dir.join("blobs/sha256").join(&name)).unwrap();
            (
                name,
                meta.ino(),
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
            )
        })
        .collect()
}

/// `docs/cache/NAME.md`'s option table lists exactly the keys the built-in
/// cache backend `name` describes.
#[track_caller]
pub(crate) fn assert_docs_match_describe(name: &str) {
    let described = crate::authors::described_options(&["cache", "backends"]);
    let keys = described
        .get(name)
        .unwrap_or_else(|| panic!("outport cache backends lists {name}"));
    let path = repo_root().join(format!("docs/cache/{name}.md"));
    let page = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &crate::authors::documented_options(&page),
        keys,
        "{}",
        path.display()
    );
}
