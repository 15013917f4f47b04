//! outport's docker exporter, as a WebAssembly component (world
//! `outport:exporter/exporter`), built on the `outport-exporter` SDK.
//!
//! It writes one image as a tarball `docker load` accepts, the way Docker 25
//! and BuildKit write it, so that it is also an OCI image layout:
//!
//! - `manifest.json`: `[{"Config": "blobs/sha256/<hex>", "RepoTags":
//!   [...], "Layers": ["blobs/sha256/<hex>", ...]}]`, the tags in docker's
//!   short form (`docker.io/library/x:latest` → `x:latest`);
//! - `repositories`: the legacy `{"x": {"latest": "<config hex>"}}`, when
//!   a name has a tag;
//! - `oci-layout` and `index.json` (one entry per name, as the oci exporter
//!   writes them) and `blobs/sha256/…`: the manifest, its config and its
//!   layers, written as they are (compressed layers stay compressed) unless
//!   the image options (`compression`, `oci-mediatypes`,
//!   `rewrite-timestamp`, `annotation*`) ask otherwise.
//!
//! A docker tarball holds one platform: [`select`] picks the manifest of a
//! multi-platform image.

mod options;
mod select;

use outport_exporter::layout::blob_path;
use outport_exporter::reference::{familiar, split_tag};
use outport_exporter::walk::{self, ManifestBlobs};
use outport_exporter::{
    ComponentInfo, Error, Guest, Layout, Options, OutputKind, Plan, Platform, Request,
    ResponseEntry, TarWriter, dest, image, log, response,
};
use serde_json::{Map, Value, json};

struct Docker;

impl Guest for Docker {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "docker".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "write one image as a docker load tarball (also an OCI layout)".to_owned(),
            options: outport_exporter::options::describe(&options::specs()),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        options::parse(&options)?;
        Ok(OutputKind::File)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let opts = options::parse(&request.options)?;
        let dest = dest::granted(request.destination)?;
        let manifests = walk::image_manifests(&image::root())?;
        let host = &request.host_platform;
        let host = Platform {
            os: host.os.clone(),
            architecture: host.architecture.clone(),
            variant: host.variant.clone(),
        };
        let chosen = select::manifest(&manifests, opts.platform.as_ref(), &host)?;
        let rewrites = opts.image.rewrites(request.source_date_epoch)?;
        let plan = Plan::from_root(chosen.descriptor.clone(), &rewrites)?;
        let layout = Layout::new(&plan, &opts.names)?;
        // The written manifest: the input's, or the one the plan rewrote.
        let blobs = walk::read_manifest(&plan.root.digest)?;
        let manifest_json = manifest_json(&blobs, &opts.names)?;
        let mut extra: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest_json)];
        let repositories = repositories(&blobs.config, &opts.names)?;
        if let Some(repositories) = &repositories {
            extra.push(("repositories", repositories));
        }

        let (name, file) = dest::open_file(&dest, "the docker exporter")?;
        let mut tar = TarWriter::new(file, &name);
        layout.write_tar(&mut tar, &extra)?;
        let bytes = tar.finish()?;
        log::info(&format!(
            "wrote docker tarball {name}: {}, {} layers, {bytes} bytes",
            chosen
                .platform
                .as_ref()
                .map_or_else(|| "unknown platform".to_owned(), ToString::to_string),
            blobs.layers.len()
        ));
        response::image_entries(&plan, &opts.names)
    }
}

/// The names with a tag, in docker's short form (`x:latest`): `RepoTags`.
fn repo_tags(names: &[String]) -> Vec<&str> {
    names
        .iter()
        .filter(|n| split_tag(n).is_some())
        .map(|n| familiar(n))
        .collect()
}

/// `manifest.json`: one image, its config and layers as paths in the tar.
fn manifest_json(blobs: &ManifestBlobs, names: &[String]) -> Result<Vec<u8>, Error> {
    let layers = blobs
        .layers
        .iter()
        .map(|d| blob_path(d).map(|(_, path)| path))
        .collect::<Result<Vec<_>, _>>()?;
    let doc = json!([{
        "Config": blob_path(&blobs.config)?.1,
        "RepoTags": repo_tags(names),
        "Layers": layers,
    }]);
    to_json(&doc, "manifest.json")
}

/// `repositories`: repository → tag → config hex, for the tagged names;
/// none when no name has a tag.
fn repositories(config: &str, names: &[String]) -> Result<Option<Vec<u8>>, Error> {
    let hex = config.split_once(':').map_or(config, |(_, hex)| hex);
    let mut repos = Map::new();
    for (repo, tag) in names.iter().filter_map(|n| split_tag(n)) {
        let tags = repos
            .entry(familiar(repo))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(tags) = tags {
            tags.insert(tag.to_owned(), json!(hex));
        }
    }
    if repos.is_empty() {
        return Ok(None);
    }
    to_json(&Value::Object(repos), "repositories").map(Some)
}

fn to_json(doc: &Value, what: &str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(doc).map_err(|e| Error::Other(format!("serializing {what}: {e}")))
}

outport_exporter::export!(Docker);

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn manifest_and_repositories() {
        let hex = |c: char| c.to_string().repeat(64);
        let blobs = ManifestBlobs {
            config: format!("sha256:{}", hex('c')),
            layers: vec![
                format!("sha256:{}", hex('a')),
                format!("sha256:{}", hex('b')),
            ],
        };
        let n = names(&[
            "docker.io/library/x:latest",
            "docker.io/library/x:1",
            "example.com/y/z:2",
            &format!("docker.io/library/w@sha256:{}", hex('0')),
        ]);
        let m: Value = serde_json::from_slice(&manifest_json(&blobs, &n).unwrap()).unwrap();
        assert_eq!(
            m,
            json!([{
                "Config": format!("blobs/sha256/{}", hex('c')),
                "RepoTags": ["x:latest", "x:1", "example.com/y/z:2"],
                "Layers": [format!("blobs/sha256/{}", hex('a')), format!("blobs/sha256/{}", hex('b'))],
            }])
        );
        let r: Value =
            serde_json::from_slice(&repositories(&blobs.config, &n).unwrap().unwrap()).unwrap();
        assert_eq!(
            r,
            json!({"x": {"latest": hex('c'), "1": hex('c')}, "example.com/y/z": {"2": hex('c')}})
        );
        assert!(repositories(&blobs.config, &[]).unwrap().is_none());
    }
}
