//! Root filesystem exporters (`tar`, `local`): the image's layers applied
//! in order, one tree per platform (or one merged tree), written as a tar
//! stream ([`tar_out`]) or unpacked into the granted directory ([`local`]).
//!
//! The plan keeps file contents out of guest memory beyond one chunk, and
//! nothing is decompressed in the guest:
//!
//! 0. the host is asked for the uncompressed view of every layer
//!    (`uncompressed-layers`), in layer order: it decompresses the gzip and
//!    zstd ones once per run, natively and in parallel, and checks each tar
//!    against its diff ID; an uncompressed layer is its own view. The call
//!    returns at once and each view is ready when its own layer is, so the
//!    first pass reads a layer while the next ones are decompressed;
//! 1. each view is read once (slow path, headers only: a file's bytes are
//!    skipped, the host passes over them) to build a [`Tree`] of metadata:
//!    whiteouts and opaque directories applied, hard links turned into
//!    shared contents, paths resolved inside the root; the tree records
//!    where each file's bytes are in its view;
//! 2. the writer puts each surviving file's bytes in their place, in layer
//!    order ([`stream_contents`]), by having the host copy them straight out
//!    of the view (`tar`: every file's range in one `copy-ranges` call, the
//!    host copying several layers at once; `local`: `blob.write-files` a
//!    batch of a layer's files at a time): no layer is read by the
//!    guest a second time, and file bytes never enter guest memory. What
//!    the second pass still needs is the tree alone (which files survive,
//!    their positions): a path's fate is known only once every layer above
//!    it has been read, so bytes cannot be placed during the first pass.
//!
//! Attestation manifests of the index are never unpacked; a SLSA
//! provenance statement attached to a platform is written beside its files
//! as `provenance.json`, as BuildKit does.

mod copies;
pub mod local;
mod provenance;
pub mod reader;
pub mod tar_out;
pub mod tree;

use std::collections::BTreeMap;
use std::io;

use crate::bindings::outport::exporter::image;
use crate::bindings::outport::exporter::types::{ComponentInfo, Error, ResponseEntry};
use crate::log;
use crate::options::{OptionSpec, Parsed};
use crate::platform::Platform;
use crate::response::entry;
use crate::walk::{self, ImageManifest};

pub use tree::{ContentId, Kind, Meta, Node, Tree};

/// The options of both root filesystem exporters.
pub const SPECS: &[OptionSpec] = &[
    OptionSpec::once(
        "platform-split",
        "for a multi-platform image: one directory per platform (linux_amd64/, \
         linux_arm64_v8/, ...) when true, one merged tree when false (a later platform's \
         file wins); a single platform always goes at the top",
    )
    .default("true"),
    OptionSpec::once(
        "platform",
        "os/arch[/variant] of the platforms to export, comma-separated (linux/arm64 matches \
         linux/arm64/v8); default: every platform of the image",
    ),
    OptionSpec::once(
        "attestation-prefix",
        "prefix of the provenance statements' file names (as BuildKit: \
         attestation-prefix=att- writes att-provenance.json); default: none",
    ),
];

/// What the exporter `name` says about itself (`describe`).
pub fn component_info(name: &str, version: &str, summary: &str) -> ComponentInfo {
    ComponentInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        summary: summary.to_owned(),
        options: crate::options::describe(SPECS),
    }
}

/// The parsed options.
#[derive(Debug)]
pub struct RootfsOptions {
    /// One directory per platform.
    pub split: bool,
    /// Only these platforms (empty: all).
    pub platforms: Vec<Platform>,
    /// Prefix of the statements' file names (`attestation-prefix`).
    pub attestation_prefix: String,
}

/// Parses and checks the options for `exporter` (its name, for messages).
pub fn parse(exporter: &str, options: &[(String, String)]) -> Result<RootfsOptions, Error> {
    let parsed = Parsed::new(exporter, SPECS, options)?;
    let platforms = match parsed.str("platform") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|p| {
                Platform::parse(p.trim())
                    .map_err(|e| Error::InvalidOption(format!("invalid option \"platform\": {e}")))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(RootfsOptions {
        split: parsed.bool("platform-split", true)?,
        platforms,
        attestation_prefix: attestation_prefix(parsed.str("attestation-prefix"))?,
    })
}

/// `attestation-prefix`: a plain file-name prefix (no `/`, not `.` or `..`
/// once the file name follows).
fn attestation_prefix(value: Option<&str>) -> Result<String, Error> {
    let prefix = value.unwrap_or_default();
    if prefix.contains('/') || prefix.contains('\0') || prefix == "." || prefix == ".." {
        return Err(Error::InvalidOption(format!(
            "invalid option \"attestation-prefix\": {prefix:?} is not a file-name prefix"
        )));
    }
    Ok(prefix.to_owned())
}

/// One platform of the export.
#[derive(Debug, Clone)]
pub struct Source {
    /// The image manifest.
    pub manifest: ImageManifest,
    /// Its directory name, as BuildKit names it (`linux_arm64_v8`).
    pub dir: String,
    /// Its layers' digests, base first.
    pub layers: Vec<String>,
    /// Its SLSA provenance statement, when the index has one for it.
    pub provenance: Option<Vec<u8>>,
}

/// What gets written: trees with the directory they go in (`""`: the
/// top), and the extra files (provenance) by path.
pub struct Plan {
    /// The platforms, in index order.
    pub sources: Vec<Source>,
    /// The uncompressed view of each layer, by the layer's digest.
    pub views: BTreeMap<String, image::Blob>,
    /// `(directory, tree)`: one per platform when split, else one.
    pub trees: Vec<(String, Tree)>,
    /// Extra small files (provenance statements): path → bytes.
    pub extra: BTreeMap<String, Vec<u8>>,
}

/// The platforms to export, with their layers and provenance.
pub fn sources(opts: &RootfsOptions) -> Result<Vec<Source>, Error> {
    let root = image::root();
    let all = walk::image_manifests(&root)?;
    if all.is_empty() {
        return Err(Error::Unsupported(
            "the image holds no image manifest".to_owned(),
        ));
    }
    let chosen: Vec<ImageManifest> = if opts.platforms.is_empty() {
        all.clone()
    } else {
        let mut chosen = Vec::new();
        for wanted in &opts.platforms {
            let found = walk::find_platform(&all, wanted).ok_or_else(|| {
                Error::InvalidOption(format!(
                    "option \"platform\": the image has no {wanted} image; its platforms are {}",
                    walk::platform_list(&all)
                ))
            })?;
            chosen.push(found.clone());
        }
        chosen
    };
    let attestations = provenance::attestation_map(&root)?;
    chosen
        .into_iter()
        .map(|manifest| {
            let layers = walk::read_manifest(&manifest.descriptor.digest)?.layers;
            let provenance = match attestations.get(&manifest.descriptor.digest) {
                Some(att) => provenance::statement(att)?,
                None => None,
            };
            Ok(Source {
                dir: dir_name(manifest.platform.as_ref()),
                manifest,
                layers,
                provenance,
            })
        })
        .collect()
}

/// `linux_arm64_v8`, as BuildKit names a platform's directory.
pub fn dir_name(platform: Option<&Platform>) -> String {
    platform.map_or_else(|| "unknown".to_owned(), |p| p.to_string().replace('/', "_"))
}

/// The uncompressed view of every layer of `sources`, by digest, from the
/// host in one call. The call returns at once: the host decompresses the
/// layers in the order asked (the image's: the order the first pass reads
/// them in), several at once, and each view is ready when its own layer
/// is; reading one waits for it alone.
fn views(sources: &[Source]) -> Result<BTreeMap<String, image::Blob>, Error> {
    let mut seen = std::collections::BTreeSet::new();
    let digests: Vec<&String> = sources
        .iter()
        .flat_map(|s| &s.layers)
        .filter(|digest| seen.insert(*digest))
        .collect();
    let layers = digests
        .iter()
        .map(|digest| image::get_blob(digest))
        .collect::<Result<Vec<_>, _>>()?;
    let borrowed: Vec<&image::Blob> = layers.iter().collect();
    let views = image::uncompressed_layers(&borrowed)?;
    Ok(digests.into_iter().cloned().zip(views).collect())
}

/// Reads every layer's uncompressed view once and builds the trees to
/// write.
pub fn plan(opts: &RootfsOptions) -> Result<Plan, Error> {
    let sources = sources(opts)?;
    let views = views(&sources)?;
    let total: usize = sources.iter().map(|s| s.layers.len()).sum();
    let mut progress = log::Progress::start("reading layers", total as u64);
    let mut platform_trees = Vec::new();
    for (p, source) in sources.iter().enumerate() {
        let mut tree = Tree::default();
        for (l, digest) in source.layers.iter().enumerate() {
            let reader = reader::BlobReader::open(&views[digest])?;
            let mut warn = |w: String| log::warn(&format!("layer {digest}: {w}"));
            tree.apply_layer(reader, p, l, &mut warn)
                .map_err(|e| layer_error(digest, &e))?;
            progress.step();
        }
        log::info(&format!(
            "{}: {} layers, {} paths",
            source.dir,
            source.layers.len(),
            tree.nodes.len()
        ));
        platform_trees.push(tree);
    }
    let split = sources.len() > 1 && opts.split;
    let mut extra = BTreeMap::new();
    let trees = if split {
        for source in &sources {
            if let Some(statement) = &source.provenance {
                extra.insert(
                    format!("{}/{}provenance.json", source.dir, opts.attestation_prefix),
                    statement.clone(),
                );
            }
        }
        sources
            .iter()
            .map(|s| s.dir.clone())
            .zip(platform_trees)
            .collect()
    } else {
        for source in &sources {
            if let Some(statement) = &source.provenance {
                let prefix = &opts.attestation_prefix;
                let name = if sources.len() == 1 {
                    format!("{prefix}provenance.json")
                } else {
                    format!("{prefix}provenance.{}.json", source.dir)
                };
                extra.insert(name, statement.clone());
            }
        }
        // The first tree is the bottom one as it is (laying it over an
        // empty tree would rebuild it path by path).
        let mut platform_trees = platform_trees.into_iter();
        let mut merged = platform_trees.next().unwrap_or_default();
        for tree in platform_trees {
            merged.overlay(tree);
        }
        vec![(String::new(), merged)]
    };
    // A statement takes the place of a path of the image with its name.
    let mut trees = trees;
    for path in extra.keys() {
        for (dir, tree) in &mut trees {
            let inside = path.strip_prefix(&format!("{dir}/")).unwrap_or(path);
            if tree.nodes.contains_key(inside) {
                log::warn(&format!(
                    "the image has its own {path}: the provenance statement replaces it"
                ));
                tree.remove_subtree(inside);
            }
        }
    }
    Ok(Plan {
        sources,
        views,
        trees,
        extra,
    })
}

fn layer_error(digest: &str, e: &io::Error) -> Error {
    Error::Io(format!("reading layer {digest}: {e}"))
}

/// Where the bytes of one file are: in the uncompressed view of its layer,
/// from byte `start` on, for the host to copy (`copy-ranges`,
/// `blob.write-files`).
pub struct FileBytes<'a> {
    /// The layer's uncompressed view.
    pub blob: &'a image::Blob,
    /// Where the file's bytes start in it.
    pub start: u64,
}

/// Hands `sink` where the bytes of every content of `wanted` are, in layer
/// order (and, in a layer, in tar order), with the content's ID. No layer
/// is read again: the bytes are in the layers' views, where the first pass
/// found them.
pub fn stream_contents<'a>(
    plan: &'a Plan,
    wanted: &[ContentId],
    sink: &mut dyn FnMut(ContentId, FileBytes<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let layers = by_layer(plan, wanted);
    let mut progress = log::Progress::start("writing files", layers.len() as u64);
    for (blob, ids) in layers {
        for id in ids {
            let start = id.offset;
            sink(id, FileBytes { blob, start })?;
        }
        progress.step();
    }
    Ok(())
}

/// The contents of `wanted` by layer, in layer order, each with its
/// layer's uncompressed view, and in tar order inside a layer.
pub fn by_layer<'a>(
    plan: &'a Plan,
    wanted: &[ContentId],
) -> Vec<(&'a image::Blob, Vec<ContentId>)> {
    let mut by_layer: BTreeMap<(usize, usize), Vec<ContentId>> = BTreeMap::new();
    for id in wanted {
        by_layer
            .entry((id.platform, id.layer))
            .or_default()
            .push(*id);
    }
    by_layer
        .into_iter()
        .map(|((platform, layer), mut ids)| {
            ids.sort_unstable_by_key(|id| id.ordinal);
            ids.dedup_by_key(|id| id.ordinal);
            let digest = &plan.sources[platform].layers[layer];
            (&plan.views[digest], ids)
        })
        .collect()
}

/// The response: `containerimage.digest` (the image's root), and
/// `containerimage.config.digest` for a single-platform image.
pub fn response() -> Result<Vec<ResponseEntry>, Error> {
    let root = image::root();
    let mut out = vec![entry("containerimage.digest", root.digest.clone())];
    if crate::media::is_manifest(&root.media_type) {
        out.push(entry(
            "containerimage.config.digest",
            walk::read_manifest(&root.digest)?.config,
        ));
    }
    Ok(out)
}
