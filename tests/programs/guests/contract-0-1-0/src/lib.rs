//! An exporter built against version 0.1.0 of the contract, whose WIT is
//! frozen in `wit/` (a copy of `wit/` as 0.1.0 was released; the WASI
//! dependencies are the repository's). A runtime implementing a later
//! 0.1.x links it unchanged: its `export` copies every layer of the image
//! (a single-platform manifest) into the granted file, one after another,
//! with `blob.copy-to-file`, and answers `test.contract=0.1.0` and
//! `test.layers=N`.

wit_bindgen::generate!({
    path: "wit",
    world: "outport:exporter/exporter@0.1.0",
    generate_all,
});

use outport::exporter::image;
use wasi::filesystem::preopens;
use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};

struct Old;

impl Guest for Old {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "contract-0-1-0".to_owned(),
            version: "0.1.0".to_owned(),
            summary: "copies the layers of a single-platform image into one file".to_owned(),
            options: Vec::new(),
        }
    }

    fn validate(options: Vec<(String, String)>) -> Result<OutputKind, Error> {
        match options.first() {
            Some((key, _)) => Err(Error::InvalidOption(format!("unknown option {key:?}"))),
            None => Ok(OutputKind::File),
        }
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let dest = request
            .destination
            .ok_or_else(|| Error::Other("no destination".to_owned()))?;
        let name = dest
            .file
            .ok_or_else(|| Error::Other("no file name".to_owned()))?;
        let (dir, _) = preopens::get_directories()
            .into_iter()
            .find(|(_, path)| *path == dest.preopen)
            .ok_or_else(|| Error::Io("the destination is not preopened".to_owned()))?;
        let file = dir
            .open_at(
                PathFlags::empty(),
                &name,
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::WRITE,
            )
            .map_err(|e| Error::Io(format!("creating {name}: {e:?}")))?;
        let manifest = image::get_blob(&image::root().digest)?.bytes()?;
        let layers = layer_digests(&String::from_utf8_lossy(&manifest));
        let mut offset = 0;
        for digest in &layers {
            offset += image::get_blob(digest)?.copy_to_file(&file, offset)?;
        }
        Ok(vec![
            ResponseEntry {
                key: "test.contract".to_owned(),
                value: "0.1.0".to_owned(),
            },
            ResponseEntry {
                key: "test.layers".to_owned(),
                value: layers.len().to_string(),
            },
        ])
    }
}

/// The layer digests of an image manifest, in order: the `digest` values
/// after its `"layers"` key (enough for the manifests the tests write).
fn layer_digests(manifest: &str) -> Vec<String> {
    let Some((_, layers)) = manifest.split_once("\"layers\"") else {
        return Vec::new();
    };
    layers
        .split("\"digest\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

export!(Old);
