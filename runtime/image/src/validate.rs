//! The validation walk: from the root descriptor, every index, manifest and
//! config is read (digest checked), parsed and checked for known media types;
//! every referenced blob must exist with its descriptor's size. Layers are
//! not read here: they are verified as they are streamed.

use std::collections::HashMap;
use std::sync::Arc;

use oci_spec::image::Descriptor;
use outport_oci::{Sha256Digest, media};
use serde_json::Value;

use crate::blob::{Blob, Fetch};
use crate::digest::is_sha256_digest;
use crate::error::Error;
use crate::source::Source;

/// The largest JSON blob (index, manifest, config) read into memory.
pub(crate) const JSON_LIMIT: u64 = 16 << 20;

/// Media types of image indexes.
pub(crate) const INDEX_TYPES: &[&str] = media::INDEXES;
/// Media types of image manifests.
pub(crate) const MANIFEST_TYPES: &[&str] = media::MANIFESTS;
/// Levels of indexes read, the root's included (`index.json` aside): an
/// index may list indexes to this depth, as the build-info rewrite and the
/// guests' walk go.
const MAX_NESTING: usize = 8;

/// Media types of image configs.
const CONFIG_TYPES: &[&str] = media::CONFIGS;
/// The empty descriptor of artifact manifests.
const EMPTY_TYPE: &str = media::OCI_EMPTY;

/// What a descriptor is expected to point at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// An index or a manifest (the root, an index entry).
    IndexOrManifest,
    Config {
        artifact: bool,
    },
    Layer {
        artifact: bool,
    },
}

impl Kind {
    /// Whether a descriptor of this kind may have `media_type`.
    fn accepts(self, media_type: &str) -> bool {
        match self {
            Kind::IndexOrManifest => {
                INDEX_TYPES.contains(&media_type) || MANIFEST_TYPES.contains(&media_type)
            }
            Kind::Config { artifact } => {
                artifact || media_type == EMPTY_TYPE || CONFIG_TYPES.contains(&media_type)
            }
            // Image layers, and the in-toto statements of attestations.
            Kind::Layer { artifact } => {
                artifact || media::is_layer(media_type) || media_type == media::IN_TOTO
            }
        }
    }
}

/// The blobs reachable from a root, in the order they were found.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) blobs: Vec<Arc<Blob>>,
    pub(crate) by_digest: HashMap<String, usize>,
}

/// Walks the graph from a root, looking blobs up among the prepared ones
/// (in-memory or already located) and then under `blobs/sha256/` of the source.
pub(crate) struct Walker<'a> {
    source: &'a Source,
    /// Prepared blobs by digest, with the name of their file for messages.
    known: HashMap<String, (Arc<Blob>, String)>,
    /// Gets layers the source does not hold (a registry's), on first read.
    fetch: Option<Arc<dyn Fetch>>,
    graph: Graph,
    /// Indexes entered and not left.
    nesting: usize,
}

impl<'a> Walker<'a> {
    /// A walker over `source`; `known` blobs are used before `blobs/sha256/`.
    pub(crate) fn new(source: &'a Source, known: Vec<(Blob, String)>) -> Walker<'a> {
        let known = known
            .into_iter()
            .map(|(blob, name)| {
                (
                    blob.descriptor().digest().to_string(),
                    (Arc::new(blob), name),
                )
            })
            .collect();
        Walker {
            source,
            known,
            fetch: None,
            graph: Graph::default(),
            nesting: 0,
        }
    }

    /// The same walker, with layers missing from `blobs/sha256/` left to
    /// `fetch` the first time a consumer reads them.
    pub(crate) fn fetching(mut self, fetch: Option<Arc<dyn Fetch>>) -> Walker<'a> {
        self.fetch = fetch;
        self
    }

    /// Validates everything reachable from `root` (found in file `holder`,
    /// described by `context` in messages) and returns the blobs.
    pub(crate) fn walk(
        mut self,
        root: &Descriptor,
        holder: &str,
        context: &str,
    ) -> Result<Graph, Error> {
        self.visit(root, Kind::IndexOrManifest, holder, context)?;
        Ok(self.graph)
    }

    fn input(&self) -> &str {
        self.source.display()
    }

    /// Checks the blob `desc` points at (found in file `holder`, described
    /// by `context` in messages) once, and walks on from it.
    fn visit(
        &mut self,
        desc: &Descriptor,
        kind: Kind,
        holder: &str,
        context: &str,
    ) -> Result<(), Error> {
        let media_type = desc.media_type().to_string();
        let digest = desc.digest().to_string();
        if !kind.accepts(&media_type) {
            return Err(Error::UnknownMediaType {
                path: holder.to_owned(),
                media_type,
                digest,
                context: context.to_owned(),
            });
        }
        let Ok(checked) = Sha256Digest::parse(&digest) else {
            return Err(Error::InvalidDigest {
                path: holder.to_owned(),
                digest,
                context: context.to_owned(),
            });
        };

        if let Some(&i) = self.graph.by_digest.get(&digest) {
            // Already reached from elsewhere: only the size must agree.
            let actual = self.graph.blobs[i].stored_len();
            return self.check_size(desc, actual, context);
        }

        let (blob, name) = self.find(desc, &checked, kind, context)?;
        self.check_size(desc, blob.stored_len(), context)?;
        self.graph
            .by_digest
            .insert(digest.clone(), self.graph.blobs.len());
        self.graph.blobs.push(Arc::clone(&blob));
        self.read_content(&blob, name, kind, &media_type, &digest, context)
    }

    /// The blob of `desc` (digest `digest`) and the name of its file: a
    /// prepared one, the file under `blobs/sha256/`, or (a layer) one to
    /// fetch.
    fn find(
        &mut self,
        desc: &Descriptor,
        digest: &Sha256Digest,
        kind: Kind,
        context: &str,
    ) -> Result<(Arc<Blob>, String), Error> {
        if let Some(found) = self.known.remove(digest.as_str()) {
            return Ok(found);
        }
        let rel = digest.blob_path();
        let name = self.source.member_display(&rel);
        let Some(region) = self.source.locate(&rel)? else {
            if let (Kind::Layer { .. }, Some(fetch)) = (kind, &self.fetch) {
                let blob = Blob::deferred(desc.clone(), Arc::clone(fetch), self.input(), context);
                return Ok((Arc::new(blob), name));
            }
            return Err(Error::MissingBlob {
                path: name,
                context: context.to_owned(),
            });
        };
        let blob = Blob::from_file(desc.clone(), region, self.input(), context, false);
        Ok((Arc::new(blob), name))
    }

    /// Reads and checks a config, or an index or manifest (then walks on
    /// to what it names); layers are left to their consumers.
    fn read_content(
        &mut self,
        blob: &Blob,
        name: String,
        kind: Kind,
        media_type: &str,
        digest: &str,
        context: &str,
    ) -> Result<(), Error> {
        match kind {
            Kind::Layer { .. } => Ok(()),
            Kind::Config { .. } => {
                let bytes = blob.read_all(JSON_LIMIT)?;
                if CONFIG_TYPES.contains(&media_type) {
                    let value = parse_json(&bytes, &name)?;
                    if !value.is_object() {
                        return Err(Error::MalformedJson {
                            path: name,
                            message: "an image config must be a JSON object".to_owned(),
                        });
                    }
                }
                Ok(())
            }
            Kind::IndexOrManifest => {
                let bytes = blob.read_all(JSON_LIMIT)?;
                let value = parse_json(&bytes, &name)?;
                self.check_media_type(&value, media_type, digest, context)?;
                if INDEX_TYPES.contains(&media_type) {
                    self.visit_index(&value, digest, &name)
                } else {
                    self.visit_manifest(&value, digest, &name)
                }
            }
        }
    }

    fn visit_index(&mut self, index: &Value, digest: &str, name: &str) -> Result<(), Error> {
        if self.nesting >= MAX_NESTING {
            return Err(Error::invalid(
                name,
                format!("indexes nest deeper than {MAX_NESTING} levels"),
            ));
        }
        let context = format!("manifest of index {digest}");
        self.nesting += 1;
        for entry in array_field(index, "manifests", name)? {
            let child = parse_descriptor(entry, name, &context)?;
            self.visit(&child, Kind::IndexOrManifest, name, &context)?;
        }
        self.nesting -= 1;
        Ok(())
    }

    fn visit_manifest(&mut self, manifest: &Value, digest: &str, name: &str) -> Result<(), Error> {
        if let Some(version) = manifest.get("schemaVersion")
            && version.as_u64() != Some(2)
        {
            return Err(Error::invalid(
                name,
                format!("unsupported manifest schemaVersion {version}"),
            ));
        }
        let artifact = manifest.get("artifactType").is_some_and(|t| !t.is_null());
        let Some(config) = manifest.get("config") else {
            return Err(Error::MalformedJson {
                path: name.to_owned(),
                message: "missing field `config`".to_owned(),
            });
        };
        let context = format!("config of manifest {digest}");
        let config = parse_descriptor(config, name, &context)?;
        self.visit(&config, Kind::Config { artifact }, name, &context)?;
        let artifact = artifact || config.media_type().to_string() == EMPTY_TYPE;
        let context = format!("layer of manifest {digest}");
        for layer in array_field(manifest, "layers", name)? {
            let layer = parse_descriptor(layer, name, &context)?;
            self.visit(&layer, Kind::Layer { artifact }, name, &context)?;
        }
        Ok(())
    }

    fn check_size(&self, desc: &Descriptor, actual: u64, context: &str) -> Result<(), Error> {
        if desc.size() != actual {
            return Err(Error::SizeMismatch {
                input: self.input().to_owned(),
                digest: desc.digest().to_string(),
                context: context.to_owned(),
                expected: desc.size(),
                actual,
            });
        }
        Ok(())
    }

    fn check_media_type(
        &self,
        value: &Value,
        expected: &str,
        digest: &str,
        context: &str,
    ) -> Result<(), Error> {
        match value.get("mediaType") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(found)) if found == expected => Ok(()),
            Some(found) => Err(Error::MediaTypeMismatch {
                input: self.input().to_owned(),
                digest: digest.to_owned(),
                context: context.to_owned(),
                descriptor: expected.to_owned(),
                content: found
                    .as_str()
                    .map_or_else(|| found.to_string(), str::to_owned),
            }),
        }
    }
}

/// Parses JSON, naming `name` in the error.
pub(crate) fn parse_json(bytes: &[u8], name: &str) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::json(name, &e))
}

/// The array `field` of a JSON object: present, an array or `null` (none).
pub(crate) fn array_field<'v>(
    value: &'v Value,
    field: &str,
    name: &str,
) -> Result<&'v [Value], Error> {
    // Go's encoding/json writes a nil slice as `null` (Docker, containerd
    // and BuildKit do, for an index or manifest listing nothing): empty.
    match value.get(field) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) => Ok(&[]),
        _ => Err(Error::MalformedJson {
            path: name.to_owned(),
            message: format!("missing or invalid field `{field}` (expected an array)"),
        }),
    }
}

/// Parses a descriptor found in file `holder`, checking its digest first so a
/// bad digest gets a clear message (and can never reach a path).
pub(crate) fn parse_descriptor(
    value: &Value,
    holder: &str,
    context: &str,
) -> Result<Descriptor, Error> {
    let digest = value.get("digest").and_then(Value::as_str);
    match digest {
        Some(digest) if is_sha256_digest(digest) => {}
        Some(digest) => {
            return Err(Error::InvalidDigest {
                path: holder.to_owned(),
                digest: digest.to_owned(),
                context: context.to_owned(),
            });
        }
        None => {
            return Err(Error::MalformedJson {
                path: holder.to_owned(),
                message: format!("descriptor of {context} has no digest string"),
            });
        }
    }
    serde_json::from_value(value.clone()).map_err(|e| Error::MalformedJson {
        path: holder.to_owned(),
        message: format!("descriptor of {context}: {e}"),
    })
}
