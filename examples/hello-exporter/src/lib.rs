//! hello-exporter: an example third-party outport exporter.
//!
//! It writes a JSON summary of the image to its `dest` file: the root
//! descriptor, the platforms, each image manifest (digest, platform, config,
//! layers with media types and sizes, config labels) and the total size of
//! the distinct manifests, configs and layers. It only reads small JSON
//! blobs (`bytes()`); layer bytes are never read.

use std::collections::BTreeSet;

use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::walk::{self, ImageManifest};
use outport_exporter::{
    ComponentInfo, Descriptor, Error, Guest, Options, OutputKind, Request, ResponseEntry, dest,
    errors, image, log,
};
use serde_json::{Map, Value, json};

const NAME: &str = "hello";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once("pretty", "true: indented JSON; false: one line").default("true"),
    OptionSpec::once("title", "a title written as the summary's \"title\" field"),
];

struct Hello;

impl Guest for Hello {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "write a JSON summary of the image (platforms, layers, sizes, labels)".into(),
            options: describe(OPTIONS),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        Parsed::new(NAME, OPTIONS, &options)?.bool("pretty", true)?;
        Ok(OutputKind::File)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let parsed = Parsed::new(NAME, OPTIONS, &request.options)?;
        let pretty = parsed.bool("pretty", true)?;
        let title = parsed.str("title").map(str::to_owned);
        let dest = dest::granted(request.destination)?;

        let root = image::root();
        let summary = summarize(&root, title)?;
        let bytes = if pretty {
            serde_json::to_vec_pretty(&summary)
        } else {
            serde_json::to_vec(&summary)
        }
        .map_err(|e| Error::Other(format!("serializing the summary: {e}")))?;

        let (name, stream) = dest::open_file_stream(&dest, "the hello exporter")?;
        dest::write_all(&stream, &bytes, &name)?;
        stream
            .blocking_flush()
            .map_err(|e| errors::stream_error(&name, e))?;
        drop(stream);
        log::info(&format!("wrote {name}: {} bytes", bytes.len()));
        Ok(vec![ResponseEntry {
            key: "hello.total-size".into(),
            value: summary["totalSize"].to_string(),
        }])
    }
}

/// The summary of the image whose root is `root`.
fn summarize(root: &Descriptor, title: Option<String>) -> Result<Value, Error> {
    let manifests = walk::image_manifests(root)?;
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut count = |digest: &str, size: u64| {
        if seen.insert(digest.to_owned()) {
            total += size;
        }
    };
    let mut platforms = Vec::new();
    let mut entries = Vec::new();
    for ImageManifest {
        descriptor,
        platform,
    } in &manifests
    {
        let platform = platform.as_ref().map(ToString::to_string);
        if let Some(p) = &platform {
            platforms.push(p.clone());
        }
        count(&descriptor.digest, descriptor.size);
        let what = format!("manifest {}", descriptor.digest);
        let doc = walk::read_json(&image::get_blob(&descriptor.digest)?, &what)?;
        let config = object(doc.get("config"), &what)?;
        let config_digest = walk::str_field(config, "digest", &what)?;
        let config_size = size(config);
        count(config_digest, config_size);
        let mut layers = Vec::new();
        let mut image_size = config_size;
        for layer in doc
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let layer = object(Some(layer), &what)?;
            let digest = walk::str_field(layer, "digest", &what)?;
            let layer_size = size(layer);
            count(digest, layer_size);
            image_size += layer_size;
            layers.push(json!({
                "digest": digest,
                "mediaType": walk::str_field(layer, "mediaType", &what)?,
                "size": layer_size,
            }));
        }
        let config_doc = walk::read_json(
            &image::get_blob(config_digest)?,
            &format!("config {config_digest}"),
        )?;
        let labels = config_doc
            .pointer("/config/Labels")
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()));
        entries.push(json!({
            "digest": descriptor.digest,
            "mediaType": descriptor.media_type,
            "size": descriptor.size,
            "platform": platform,
            "config": {"digest": config_digest, "size": config_size},
            "layers": layers,
            "labels": labels,
            "imageSize": image_size,
        }));
    }
    let mut summary = Map::new();
    if let Some(title) = title {
        summary.insert("title".into(), title.into());
    }
    summary.insert(
        "root".into(),
        json!({"mediaType": root.media_type, "digest": root.digest, "size": root.size}),
    );
    summary.insert("platforms".into(), json!(platforms));
    summary.insert("manifests".into(), Value::Array(entries));
    summary.insert("totalSize".into(), json!(total));
    Ok(Value::Object(summary))
}

fn object<'a>(value: Option<&'a Value>, what: &str) -> Result<&'a Map<String, Value>, Error> {
    value.and_then(Value::as_object).ok_or_else(|| {
        Error::InvalidImage(format!("{what}: a descriptor is missing or not an object"))
    })
}

fn size(descriptor: &Map<String, Value>) -> u64 {
    descriptor.get("size").and_then(Value::as_u64).unwrap_or(0)
}

outport_exporter::export!(Hello);
