//! outport's local cache backend, as a WebAssembly component (world
//! `outport:exporter/cache-backend`), built on the `outport-exporter` SDK.
//!
//! It keeps build caches in BuildKit's local cache layout, an OCI image
//! layout: `oci-layout`, `index.json` (one entry per `tag=`, annotated
//! `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>`.
//!
//! - `export-cache` writes the cache the runtime presents into the granted
//!   directory, which starts as the existing cache: blobs already there are
//!   not written again, `index.json` is replaced (written beside and renamed)
//!   with the entry for `tag=` added or replaced, and `reset=true` removes the
//!   blobs no entry refers to any more.
//! - `import-cache` reads the entry chosen by `digest=` or `tag=` from the
//!   `src=` directory (granted read-only) and writes it, with every blob it
//!   refers to, as an OCI layout into the destination. Blob bytes move from
//!   file to file by host splices.

mod layout;

use outport_exporter::bindings::cache::Guest;
use outport_exporter::cache::{CacheImage, EXPORT_SPECS, ExportOptions};
use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::{
    CacheOperation, ComponentInfo, Error, Options, OutputKind, Request, ResponseEntry, dest,
};

/// The options of `export-cache` (besides the runtime's `dest`, `mode`,
/// `ignore-error`).
const EXPORT_OPTIONS: &[OptionSpec] = &[
    OptionSpec::once(
        "tag",
        "the index.json entry to write (org.opencontainers.image.ref.name)",
    )
    .default("latest"),
    OptionSpec::once(
        "reset",
        "true: remove the blobs no index.json entry refers to after the export",
    )
    .default("false"),
];

/// The options of `import-cache` (besides the runtime's `src`).
const IMPORT_OPTIONS: &[OptionSpec] = &[
    OptionSpec::once("tag", "the index.json entry to read").default("latest"),
    OptionSpec::once(
        "digest",
        "the index.json entry to read, by digest (wins over tag)",
    ),
];

const NAME: &str = "local cache";

struct LocalCache;

impl Guest for LocalCache {
    fn describe() -> ComponentInfo {
        let mut options = describe(EXPORT_OPTIONS);
        options.extend(describe(EXPORT_SPECS));
        options.extend(describe(&IMPORT_OPTIONS[1..]));
        ComponentInfo {
            name: "local".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "keep build caches in a directory, in BuildKit's local cache layout"
                .to_owned(),
            options,
        }
    }

    fn validate(options: Options, operation: CacheOperation) -> Result<OutputKind, Error> {
        match operation {
            CacheOperation::ExportCache => {
                export_options(&options)?;
            }
            CacheOperation::ImportCache => {
                Parsed::new(NAME, IMPORT_OPTIONS, &options)?;
            }
        }
        Ok(OutputKind::Directory)
    }

    fn export_cache(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let (parsed, options) = export_options(&request.options)?;
        let tag = parsed.str("tag").unwrap_or("latest");
        let reset = parsed.bool("reset", false)?;
        let dest = dest::granted(request.destination)?;
        let dir = dest::preopen(&dest.preopen)?;
        let cache = CacheImage::read()?.convert(&options)?;
        layout::export(&dir, &cache, &options, tag, reset)
    }

    fn import_cache(request: Request, source: Option<String>) -> Result<Vec<ResponseEntry>, Error> {
        let parsed = Parsed::new(NAME, IMPORT_OPTIONS, &request.options)?;
        let source = source.ok_or_else(|| {
            Error::InvalidOption("the local cache backend imports from src=DIR".to_owned())
        })?;
        let src = dest::preopen(&source)?;
        let dest = dest::granted(request.destination)?;
        let dir = dest::preopen(&dest.preopen)?;
        layout::import(&src, &dir, parsed.str("tag"), parsed.str("digest"))
    }
}

/// The export options, parsed and checked.
fn export_options(options: &Options) -> Result<(Parsed<'_>, ExportOptions), Error> {
    let specs: Vec<OptionSpec> = EXPORT_OPTIONS.iter().chain(EXPORT_SPECS).copied().collect();
    let parsed = Parsed::new(NAME, &specs, options)?;
    let cache_options = ExportOptions::parse(&parsed)?;
    Ok((parsed, cache_options))
}

outport_exporter::export_cache_backend!(LocalCache);
