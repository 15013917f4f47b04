//! BuildKit build caches, for cache backends (world `cache-backend`): the
//! cache the runtime presents ([`CacheImage`]: an image manifest whose config
//! is the cache config), the options every BuildKit cache exporter shares
//! ([`ExportOptions`]), and the document BuildKit stores as the cache's root
//! ([`root_document`]): that manifest (`image-manifest=true`) or an index
//! listing the layers and the config. An import writes the cache back as
//! an OCI layout: [`begin_layout`], the blobs ([`write_blob`] for those the
//! component holds), then [`finish_layout`].

use serde_json::{Map, Value, json};

use crate::bindings::outport::exporter::image::{self, Blob, Compression, ConvertOptions};
use crate::bindings::outport::exporter::types::{Descriptor, Error};
use crate::bindings::wasi::filesystem::types::Descriptor as Dir;
use crate::layout::{OCI_LAYOUT, blob_path};
use crate::options::{OptionSpec, Parsed};
use crate::walk::{contract_descriptor, read_document, read_json};
use crate::{dest, media};
use outport_oci::document::Manifest;

/// Media type of BuildKit's cache config.
pub const CACHE_CONFIG: &str = media::BUILDKIT_CACHE_CONFIG;

/// The options of [`ExportOptions`], for a backend's option table.
pub const EXPORT_SPECS: &[OptionSpec] = &[
    OptionSpec::once(
        "image-manifest",
        "store the cache config as the config of an OCI image manifest (false: an index lists the layers and the config)",
    )
    .default("true"),
    OptionSpec::once(
        "oci-mediatypes",
        "OCI media types (false: docker's; image-manifest then defaults to false, and true is refused)",
    )
    .default("true"),
    OptionSpec::once(
        "compression",
        "uncompressed, gzip, estargz or zstd: uncompressed layers get it (see force-compression); not given: layers are kept as they are",
    ),
    OptionSpec::once(
        "compression-level",
        "compression level: 0-9 for gzip, 1-22 for zstd",
    ),
    OptionSpec::once(
        "force-compression",
        "true: recompress every layer to the compression asked for (false: only uncompressed layers are compressed)",
    )
    .default("false"),
];

/// The cache options shared by BuildKit's cache exporters.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// `image-manifest`.
    pub image_manifest: bool,
    /// `oci-mediatypes`.
    pub oci_mediatypes: bool,
    /// `compression`: `uncompressed`, `gzip`, `estargz` or `zstd`; none
    /// when not given (layers are kept as they are).
    pub compression: Option<String>,
    /// `compression-level`.
    pub compression_level: Option<i32>,
    /// `force-compression`.
    pub force_compression: bool,
}

impl ExportOptions {
    /// Reads and checks the options of [`EXPORT_SPECS`] in `parsed`.
    pub fn parse(parsed: &Parsed) -> Result<Self, Error> {
        let oci_mediatypes = parsed.bool("oci-mediatypes", true)?;
        // As BuildKit: docker media types alone mean the index form.
        let image_manifest = parsed.bool("image-manifest", oci_mediatypes)?;
        if image_manifest && !oci_mediatypes {
            return Err(Error::InvalidOption(
                "image-manifest=true needs oci-mediatypes=true (as in BuildKit)".to_owned(),
            ));
        }
        let compression = parsed.str("compression").map(str::to_owned);
        if let Some(compression) = &compression
            && !["uncompressed", "gzip", "estargz", "zstd"].contains(&compression.as_str())
        {
            return Err(Error::InvalidOption(format!(
                "compression={compression:?}: expected uncompressed, gzip, estargz or zstd"
            )));
        }
        let compression_level = match parsed.str("compression-level") {
            None => None,
            Some(level) => Some(level.parse::<i32>().map_err(|_| {
                Error::InvalidOption(format!("compression-level={level:?}: expected an integer"))
            })?),
        };
        let force_compression = parsed.bool("force-compression", false)?;
        if compression.is_none() && (force_compression || compression_level.is_some()) {
            return Err(Error::InvalidOption(
                "force-compression and compression-level need compression=".to_owned(),
            ));
        }
        Ok(ExportOptions {
            image_manifest,
            oci_mediatypes,
            compression,
            compression_level,
            force_compression,
        })
    }

    /// What the host's `convert-layers` should do to the layers; none when
    /// nothing is converted (no `compression`, or `estargz` without
    /// `force-compression`: layers are kept as they are). The host makes no
    /// estargz, so
    /// `compression=estargz,force-compression=true` is unsupported.
    pub fn convert_options(&self) -> Result<Option<ConvertOptions>, Error> {
        let compression = match self.compression.as_deref() {
            None => return Ok(None),
            Some("uncompressed") => Compression::Uncompressed,
            Some("zstd") => Compression::Zstd,
            Some("estargz") if self.force_compression => {
                return Err(Error::Unsupported(
                    "compression=estargz with force-compression=true: recompressing layers to estargz is not supported"
                        .to_owned(),
                ));
            }
            Some("estargz") => return Ok(None),
            _ => Compression::Gzip,
        };
        Ok(Some(ConvertOptions {
            compression,
            level: self.compression_level,
            force: self.force_compression,
            rewrite_timestamp: None,
        }))
    }
}

/// The cache the runtime presents: its config blob and its layer blobs.
pub struct CacheImage {
    /// The cache config's descriptor and blob.
    pub config: (Descriptor, Blob),
    /// Each layer's descriptor (as the manifest lists it) and blob.
    pub layers: Vec<(Descriptor, Blob)>,
}

impl CacheImage {
    /// Reads the cache from the `image` interface.
    pub fn read() -> Result<Self, Error> {
        let root = image::root();
        if !media::is_manifest(&root.media_type) {
            return Err(Error::Unsupported(format!(
                "the cache's root {} is a {}, not an image manifest",
                root.digest, root.media_type
            )));
        }
        let what = format!("cache manifest {}", root.digest);
        let manifest: Manifest = read_document(&image::get_blob(&root.digest)?, &what)?;
        let config = contract_descriptor(manifest.config);
        if config.media_type != CACHE_CONFIG {
            return Err(Error::Unsupported(format!(
                "{what}: the config is a {}, not a BuildKit cache config",
                config.media_type
            )));
        }
        let config_blob = image::get_blob(&config.digest)?;
        let mut layers = Vec::new();
        for layer in manifest.layers {
            let desc = contract_descriptor(layer);
            let blob = image::get_blob(&desc.digest)?;
            layers.push((desc, blob));
        }
        Ok(CacheImage {
            config: (config, config_blob),
            layers,
        })
    }

    /// Recompresses the layers as `options` ask, on the host
    /// (`image::convert-layers`; the bytes never enter the guest):
    /// uncompressed layers get `compression`, and with `force-compression`
    /// every layer does. The cache config is rewritten to follow: each
    /// converted layer's `blob` (and, where BuildKit's layer annotations
    /// are present, their `mediaType`, `size` and `diffID`) names the new
    /// blob, so records keep pointing at the same layers.
    pub fn convert(self, options: &ExportOptions) -> Result<Self, Error> {
        let Some(convert) = options.convert_options()? else {
            return Ok(self);
        };
        let handles: Vec<&Blob> = self.layers.iter().map(|(_, b)| b).collect();
        let results = image::convert_layers(&handles, convert)?;
        let mut changed = Map::new();
        let mut layers = Vec::with_capacity(self.layers.len());
        for ((old, blob), result) in self.layers.into_iter().zip(results) {
            let Some(converted) = result else {
                layers.push((old, blob));
                continue;
            };
            let new = converted.blob.descriptor();
            changed.insert(
                old.digest.clone(),
                json!({"mediaType": new.media_type, "digest": new.digest, "size": new.size,
                       "diffID": converted.diff_id}),
            );
            layers.push((new, converted.blob));
        }
        if changed.is_empty() {
            return Ok(CacheImage { layers, ..self });
        }
        let what = format!("cache config {}", self.config.0.digest);
        let mut config = read_json(&self.config.1, &what)?;
        for layer in config
            .get_mut("layers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(new) = layer
                .get("blob")
                .and_then(Value::as_str)
                .and_then(|d| changed.get(d))
            else {
                continue;
            };
            layer["blob"] = new["digest"].clone();
            if let Some(annotations) = layer.get_mut("annotations").and_then(Value::as_object_mut) {
                for key in ["mediaType", "size", "diffID"] {
                    annotations.insert(key.to_owned(), new[key].clone());
                }
            }
        }
        let bytes = serde_json::to_vec(&config)
            .map_err(|e| Error::Other(format!("serializing the {what}: {e}")))?;
        let blob = image::put_blob(CACHE_CONFIG, &bytes)?;
        Ok(CacheImage {
            config: (blob.descriptor(), blob),
            layers,
        })
    }
}

/// The compression a layer media type says: `gzip`, `zstd` or `uncompressed`.
pub fn layer_compression(media_type: &str) -> &'static str {
    if media_type.ends_with("gzip") {
        "gzip"
    } else if media_type.ends_with("zstd") {
        "zstd"
    } else {
        "uncompressed"
    }
}

/// A layer's media type in OCI (`oci = true`) or docker terms.
pub fn layer_media_type(media_type: &str, oci: bool) -> String {
    match (layer_compression(media_type), oci) {
        ("gzip", true) => media::OCI_LAYER_GZIP,
        ("gzip", false) => media::DOCKER_LAYER_GZIP,
        ("uncompressed", true) => media::OCI_LAYER,
        ("uncompressed", false) => media::DOCKER_LAYER,
        // docker has no zstd layer type: BuildKit keeps the OCI one.
        _ => media::OCI_LAYER_ZSTD,
    }
    .to_owned()
}

fn descriptor(media_type: &str, desc: &Descriptor) -> Value {
    json!({"mediaType": media_type, "digest": desc.digest, "size": desc.size})
}

/// The document BuildKit stores as the cache's root, as `(media type,
/// bytes)`: with `image-manifest=true` an OCI image manifest whose config is
/// the cache config, else an index (a docker manifest list with
/// `oci-mediatypes=false`) listing each layer and then the config.
pub fn root_document(
    cache: &CacheImage,
    options: &ExportOptions,
) -> Result<(String, Vec<u8>), Error> {
    let layers: Vec<Value> = cache
        .layers
        .iter()
        .map(|(d, _)| descriptor(&layer_media_type(&d.media_type, options.oci_mediatypes), d))
        .collect();
    let config = descriptor(CACHE_CONFIG, &cache.config.0);
    let (media_type, doc) = if options.image_manifest {
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        (media::OCI_MANIFEST, doc)
    } else {
        let media_type = if options.oci_mediatypes {
            media::OCI_INDEX
        } else {
            media::DOCKER_MANIFEST_LIST
        };
        let mut manifests = layers;
        manifests.push(config);
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        (media_type, doc)
    };
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| Error::Other(format!("serializing the cache's root: {e}")))?;
    Ok((media_type.to_owned(), bytes))
}

/// Starts an imported cache's OCI layout in `dir`: `oci-layout` and
/// `blobs/sha256/`.
pub fn begin_layout(dir: &Dir) -> Result<(), Error> {
    dest::write_file(dir, "oci-layout", OCI_LAYOUT)?;
    dest::create_dir(dir, "blobs")?;
    dest::create_dir(dir, "blobs/sha256")
}

/// Writes `blob` into the layout `dir` at its blob path (the host copies
/// the bytes); its digest and size.
pub fn write_blob(dir: &Dir, blob: &Blob) -> Result<(String, u64), Error> {
    let desc = blob.descriptor();
    let (_, path) = blob_path(&desc.digest)?;
    let file = dest::create_file(dir, &path)?;
    blob.copy_to_file(&file, 0)?;
    Ok((desc.digest, desc.size))
}

/// Ends an imported cache's layout: `index.json` listing `entry`, the
/// descriptor of the cache's root, alone.
pub fn finish_layout(dir: &Dir, entry: Value) -> Result<(), Error> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [entry],
    });
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Other(format!("serializing index.json: {e}")))?;
    dest::write_file(dir, "index.json", &bytes)
}

/// The digests a cache root document (`doc`, of `media_type`) refers to:
/// an index's entries, or a manifest's config and layers.
pub fn referenced_digests(media_type: &str, doc: &Value) -> Vec<String> {
    let digest = |v: &Value| v.get("digest").and_then(Value::as_str).map(str::to_owned);
    if media::is_index(media_type) {
        doc.get("manifests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(digest)
            .collect()
    } else {
        let config = doc.get("config").and_then(digest);
        let layers = doc
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(digest);
        config.into_iter().chain(layers).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<ExportOptions, Error> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ExportOptions::parse(&Parsed::new("test", EXPORT_SPECS, &owned)?)
    }

    #[test]
    fn export_options_follow_buildkit() {
        let defaults = options(&[]).unwrap();
        assert!(defaults.image_manifest && defaults.oci_mediatypes && !defaults.force_compression);
        assert_eq!(defaults.compression, None);
        assert!(matches!(defaults.convert_options(), Ok(None)));
        let docker = options(&[("oci-mediatypes", "false")]).unwrap();
        assert!(!docker.image_manifest && !docker.oci_mediatypes);
        assert!(matches!(
            options(&[("oci-mediatypes", "false"), ("image-manifest", "true")]),
            Err(Error::InvalidOption(m)) if m.contains("image-manifest=true")
        ));
        assert!(options(&[("oci-mediatypes", "false"), ("image-manifest", "false")]).is_ok());
        assert!(options(&[("compression", "brotli")]).is_err());
        assert!(options(&[("compression-level", "x")]).is_err());
        assert!(options(&[("force-compression", "true")]).is_err());
        assert!(options(&[("compression-level", "3")]).is_err());
    }

    #[test]
    fn convert_options_follow_compression_and_force() {
        let zstd = options(&[("compression", "zstd"), ("force-compression", "true")]).unwrap();
        assert!(matches!(
            zstd.convert_options(),
            Ok(Some(ConvertOptions {
                compression: Compression::Zstd,
                force: true,
                ..
            }))
        ));
        let estargz = options(&[("compression", "estargz")]).unwrap();
        assert!(matches!(estargz.convert_options(), Ok(None)));
        let forced = options(&[("compression", "estargz"), ("force-compression", "true")]).unwrap();
        assert!(matches!(
            forced.convert_options(),
            Err(Error::Unsupported(_))
        ));
        let level = options(&[("compression", "gzip"), ("compression-level", "3")]).unwrap();
        assert!(matches!(
            level.convert_options(),
            Ok(Some(ConvertOptions { level: Some(3), .. }))
        ));
    }

    #[test]
    fn layer_media_types_convert_between_oci_and_docker() {
        let gzip = media::OCI_LAYER_GZIP;
        let docker_gzip = media::DOCKER_LAYER_GZIP;
        assert_eq!(layer_media_type(gzip, false), docker_gzip);
        assert_eq!(layer_media_type(docker_gzip, true), gzip);
        let zstd = media::OCI_LAYER_ZSTD;
        assert_eq!(layer_media_type(zstd, false), zstd);
        assert_eq!(layer_compression(media::OCI_LAYER), "uncompressed");
    }

    #[test]
    fn referenced_digests_of_both_shapes() {
        let manifest =
            json!({"config": {"digest": "sha256:c"}, "layers": [{"digest": "sha256:l"}]});
        assert_eq!(
            referenced_digests(media::OCI_MANIFEST, &manifest),
            ["sha256:c", "sha256:l"]
        );
        let index = json!({"manifests": [{"digest": "sha256:l"}, {"digest": "sha256:c"}]});
        assert_eq!(
            referenced_digests(media::OCI_INDEX, &index),
            ["sha256:l", "sha256:c"]
        );
    }
}
