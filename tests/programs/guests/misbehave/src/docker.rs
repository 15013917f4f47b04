//! The actions that write a docker tarball (`docker load`'s format:
//! `manifest.json`, the config, the layers) of the image's first manifest,
//! tagged `name=`, its config labelled `outport.test=REPO` so that each
//! name's image has an ID of its own: `docker-then-sleep` waits `pause=`
//! seconds after writing it, then succeeds; `docker-then-error` waits, then
//! fails; `docker-rewrite` writes it tagged `REPO:0`, waits, then writes
//! the right tag over those bytes (back into the file's beginning, out of
//! order) and succeeds.

use outport_exporter::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};
use outport_exporter::{
    Destination, Error, Parsed, ResponseEntry, TarWriter, dest, image, media, walk,
};
use serde_json::{Value, json};

/// Most bytes of the file read back by `docker-rewrite`.
const READ_LIMIT: u64 = 64 << 20;

pub(crate) fn docker(
    action: &str,
    parsed: &Parsed,
    destination: Option<Destination>,
) -> Result<Vec<ResponseEntry>, Error> {
    let name = parsed.str("name").unwrap_or("outport-test/misbehave:1");
    let pause = parsed
        .str("pause")
        .unwrap_or("3")
        .parse::<u64>()
        .map_err(|e| Error::InvalidOption(format!("pause: {e}")))?;
    let (repo, tag) = name
        .rsplit_once(':')
        .ok_or_else(|| Error::InvalidOption(format!("name {name:?} has no tag")))?;
    let written = match action {
        "docker-rewrite" => format!("{repo}:0"),
        _ => name.to_owned(),
    };
    let destination = dest::granted(destination)?;
    let (file_name, config) = write_tarball(&destination, &written, repo)?;
    std::thread::sleep(std::time::Duration::from_secs(pause));
    let entries = vec![ResponseEntry {
        key: "containerimage.config.digest".into(),
        value: config,
    }];
    match action {
        "docker-then-error" => Err(Error::Io("deliberate failure after the tarball".into())),
        "docker-rewrite" => {
            let dir = dest::preopen(&destination.preopen)?;
            let bytes = dest::read_file(&dir, &file_name, READ_LIMIT)?
                .ok_or_else(|| Error::Io(format!("{file_name} is gone")))?;
            let file = open_for_writing(&dir, &file_name)?;
            let wrong = written.as_bytes();
            let mut at = 0;
            while let Some(found) = find(&bytes[at..], wrong) {
                let offset = (at + found + wrong.len() - 1) as u64;
                dest::write_all_at(&file, tag.as_bytes(), offset, "rewriting the tag")?;
                at += found + wrong.len();
            }
            Ok(entries)
        }
        _ => Ok(entries),
    }
}

/// Writes the docker tarball tagged `name` into the granted file; returns
/// the file's name and the config's digest.
fn write_tarball(
    destination: &Destination,
    name: &str,
    label: &str,
) -> Result<(String, String), Error> {
    let manifests = walk::image_manifests(&image::root())?;
    let first = manifests
        .first()
        .ok_or_else(|| Error::InvalidImage("no image manifest".into()))?;
    let blobs = walk::read_manifest(&first.descriptor.digest)?;
    let mut config: Value = walk::read_json(&image::get_blob(&blobs.config)?, "config")?;
    config["config"]["Labels"]["outport.test"] = json!(label);
    let config = serde_json::to_vec(&config).map_err(|e| Error::Other(e.to_string()))?;
    let digest = image::put_blob(media::DOCKER_CONFIG, &config)?
        .descriptor()
        .digest;
    let layers: Vec<String> = (0..blobs.layers.len())
        .map(|i| format!("layer-{i}"))
        .collect();
    let manifest = json!([{ "Config": "config.json", "RepoTags": [name], "Layers": layers }]);
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    let (file_name, file) = dest::open_file(destination, "a docker tarball")?;
    let mut tar = TarWriter::new(file, &file_name);
    tar.file("manifest.json", &manifest)?;
    tar.file("config.json", &config)?;
    for (path, layer) in layers.iter().zip(&blobs.layers) {
        tar.blob(path, &image::get_blob(layer)?)?;
    }
    tar.finish()?;
    Ok((file_name, digest))
}

/// The file `name` of `dir`, opened for writing without truncating it.
fn open_for_writing(dir: &Descriptor, name: &str) -> Result<Descriptor, Error> {
    dir.open_at(
        PathFlags::empty(),
        name,
        OpenFlags::empty(),
        DescriptorFlags::WRITE,
    )
    .map_err(|e| Error::Io(format!("opening {name}: {e:?}")))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
