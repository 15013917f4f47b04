//! Layers recompressed by a cache export (`compression=zstd,force-compression=true`):
//! the config and BuildKit's layer annotations follow; estargz is never
//! made by force.

use super::*;

#[test]
fn forced_zstd_recompresses_layers_and_the_config_follows() {
    let tmp = tempdir();
    let image_out = tmp.path().join("image");
    let plain = tmp.path().join("plain");
    let zstd = tmp.path().join("zstd");
    let opts = "compression=zstd,force-compression=true";
    let run = export_sample_with_caches(
        &format!("type=oci,tar=false,dest={},{opts}", path_str(&image_out)),
        &tmp.path().join("metadata.json"),
        &[
            format!("type=local,dest={}", path_str(&plain)),
            format!("type=local,dest={},{opts}", path_str(&zstd)),
        ],
    );
    run.assert_success();

    let files = LayoutFiles::from_dir(&zstd);
    files.verify();
    let written = read_cache(&zstd, "latest");
    let before = read_cache(&plain, "latest");
    assert_eq!(written.layers.len(), before.layers.len());
    let root = skopeo_json(&["inspect", "--raw", &oci_dir_ref(&zstd, "latest")]);
    for layer in array_at(&root, "layers") {
        assert_eq!(str_at(layer, "mediaType"), MT_LAYER_ZSTD, "{root}");
        let bytes = files.blob(str_at(layer, "digest"));
        assert!(bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "not zstd");
    }
    // The same layers the OCI exporter makes from the same input with the
    // same options: its config keeps the input's diff IDs, so these layers
    // hold the input's tars.
    let image = LayoutFiles::from_dir(&image_out);
    let mut image_layers = BTreeSet::new();
    for arch in ["amd64", "arm64"] {
        let manifest = image.manifest(arch);
        let config = image.blob_json(str_at(&manifest["config"], "digest"));
        let input = LayoutFiles::from_dir(&sample_image()).manifest(arch);
        let input_config =
            LayoutFiles::from_dir(&sample_image()).blob_json(str_at(&input["config"], "digest"));
        assert_eq!(config["rootfs"], input_config["rootfs"]);
        for layer in array_at(&manifest, "layers") {
            image_layers.insert(str_at(layer, "digest").to_owned());
        }
    }
    let cache_layers: BTreeSet<String> = written.layers.iter().cloned().collect();
    assert_eq!(cache_layers, image_layers);

    // The cache config names the converted blobs in place of the old ones,
    // and is otherwise unchanged.
    let mut config = parse_json("zstd cache config", &written.config);
    let plain_config = parse_json("plain cache config", &before.config);
    for layer in config["layers"].as_array_mut().unwrap() {
        let blob = str_at(layer, "blob").to_owned();
        assert!(cache_layers.contains(&blob), "{blob} is not a cache layer");
        let i = written.layers.iter().position(|d| *d == blob).unwrap();
        layer["blob"] = Value::from(before.layers[i].clone());
    }
    assert_eq!(config, plain_config);

    // The host's import verification accepts the converted cache.
    let imported = tmp.path().join("imported");
    cache_import(&format!("type=local,src={}", path_str(&zstd)), &imported).assert_success();
    assert_eq!(read_cache(&imported, "latest").config, written.config);
}

#[test]
fn recompression_updates_buildkit_layer_annotations() {
    let tmp = tempdir();
    let dir = mkdir(tmp.path(), "bk");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let layout = Layout::open(&dir);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = noise(3000);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "file", body.as_slice())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let (layer, layer_size) = layout.add_blob(&gz.finish().unwrap());
    let created = "2024-01-02T03:04:05Z";
    let config = json!({
        "layers": [{"blob": layer, "parent": -1, "annotations": {
            "mediaType": MT_LAYER_GZIP, "diffID": sha256_digest(&tar),
            "size": layer_size, "createdAt": created}}],
        "records": [{"digest": sha256_digest(b"step"), "layers": [{"layer": 0}]}],
    });
    let (config_digest, config_size) = layout.add_blob(&serde_json::to_vec(&config).unwrap());
    let root = json!({"schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CACHE_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": MT_LAYER_GZIP, "digest": layer, "size": layer_size}]});
    let (root_digest, root_size) = layout.add_blob(&serde_json::to_vec(&root).unwrap());
    layout.write_index_json(&json!({"schemaVersion": 2, "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": root_digest, "size": root_size,
                       "annotations": {ANN_REF_NAME: "latest"}}]}));

    let cache = tmp.path().join("cache");
    cache_export(
        &dir,
        &[format!(
            "type=local,dest={},compression=zstd,force-compression=true",
            path_str(&cache)
        )],
    )
    .assert_success();
    let written = read_cache(&cache, "latest");
    let files = LayoutFiles::from_dir(&cache);
    files.verify();
    let new = &written.layers[0];
    assert_ne!(*new, layer);
    let config = parse_json("cache config", &written.config);
    let entry = &config["layers"][0];
    assert_eq!(entry["blob"], *new);
    let annotations = &entry["annotations"];
    assert_eq!(annotations["mediaType"], MT_LAYER_ZSTD);
    assert_eq!(annotations["size"], files.blob(new).len() as u64);
    assert_eq!(
        annotations["diffID"],
        sha256_digest(&tar),
        "same tar inside"
    );
    assert_eq!(annotations["createdAt"], created);
}

#[test]
fn estargz_is_not_made_by_force() {
    let tmp = tempdir();
    let cache = tmp.path().join("cache");
    let run = cache_export(
        &sample_image(),
        &[format!(
            "type=local,dest={},compression=estargz,force-compression=true",
            path_str(&cache)
        )],
    );
    run.assert_error(&["estargz"], &["not supported"]);
    assert_empty_or_absent(&cache);
}
