//! outport's registry cache backend, as a WebAssembly component (world
//! `outport:exporter/networked-cache-backend`), built on the
//! `outport-exporter` SDK: BuildKit's `type=registry` cache, kept in an OCI
//! distribution registry under `ref=HOST/REPO:TAG`.
//!
//! - `export-cache` pushes the cache's layers and its cache config (blobs
//!   the repository has are not uploaded again; the host streams the bytes
//!   into each upload), then the cache's root document tagged: an OCI image
//!   manifest whose config is the cache config (`image-manifest=true`, the
//!   default since BuildKit v0.21) or an index listing the layers and the
//!   config. Layers are recompressed by the host as the options ask, as
//!   the local backend does (the SDK's `cache` module).
//! - `import-cache` pulls the root document, then every blob it names (the
//!   host splicing each body into its file), into the destination as the
//!   OCI layout the local backend's import writes.
//!
//! The host lets the component reach the registry of `ref=` only (or the
//! policy's hosts) and adds the credentials; it never sees them.

mod remote;

use outport_exporter::bindings::cache::Guest;
use outport_exporter::cache::{EXPORT_SPECS, ExportOptions};
use outport_exporter::distribution::Registry;
use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::{
    CacheOperation, ComponentInfo, Error, Options, OutputKind, Request, ResponseEntry, dest,
    reference,
};

/// The options of both operations (`mode` and `ignore-error` are the
/// runtime's).
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once(
        "ref",
        "the cache image, HOST[:PORT]/REPO[:TAG] (required; import also takes @sha256:...)",
    ),
    OptionSpec::once(
        "registry.insecure",
        "talk plain HTTP to the registry instead of HTTPS",
    )
    .default("false"),
];

const NAME: &str = "registry cache";

/// Where the cache is: the repository, and the tag or digest of its root.
pub struct Target {
    /// The repository at its registry.
    pub registry: Registry,
    /// The normalized `ref=`, for messages and responses.
    pub name: String,
    /// A tag, or a digest (`sha256:…`).
    pub reference: String,
    /// Whether `reference` is a tag.
    pub tagged: bool,
}

impl Target {
    /// The target of `ref=` in `parsed`.
    fn parse(parsed: &Parsed) -> Result<Target, Error> {
        let given = parsed.str("ref").filter(|r| !r.is_empty()).ok_or_else(|| {
            Error::InvalidOption("ref= is required (HOST[:PORT]/REPO:TAG)".to_owned())
        })?;
        let name = reference::normalize(given)
            .map_err(|e| Error::InvalidOption(format!("ref={given:?}: {e}")))?;
        let insecure = parsed.bool("registry.insecure", false)?;
        let (repo, digest) = match name.split_once('@') {
            Some((repo, digest)) => (repo, Some(digest)),
            None => (name.as_str(), None),
        };
        let (registry, tag) = Registry::for_name(repo, insecure)?;
        let (reference, tagged) = match (digest, tag) {
            (Some(digest), _) => (digest.to_owned(), false),
            (None, Some(tag)) => (tag, true),
            (None, None) => ("latest".to_owned(), true),
        };
        Ok(Target {
            registry,
            name,
            reference,
            tagged,
        })
    }
}

/// The export's options, checked: the target (tagged) and the cache
/// options BuildKit's exporters share.
fn export_settings(options: &Options) -> Result<(Target, ExportOptions), Error> {
    let specs: Vec<OptionSpec> = OPTIONS.iter().chain(EXPORT_SPECS).copied().collect();
    let parsed = Parsed::new(NAME, &specs, options)?;
    let target = Target::parse(&parsed)?;
    if !target.tagged {
        return Err(Error::InvalidOption(format!(
            "ref={}: an export needs a tag, not a digest",
            target.name
        )));
    }
    Ok((target, ExportOptions::parse(&parsed)?))
}

/// The import's target, checked.
fn import_target(options: &Options) -> Result<Target, Error> {
    Target::parse(&Parsed::new(NAME, OPTIONS, options)?)
}

struct RegistryCache;

impl Guest for RegistryCache {
    fn describe() -> ComponentInfo {
        let mut options = describe(OPTIONS);
        options.extend(describe(EXPORT_SPECS));
        ComponentInfo {
            name: "registry".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary:
                "keep build caches in an OCI distribution registry, as BuildKit's registry cache"
                    .to_owned(),
            options,
        }
    }

    fn validate(options: Options, operation: CacheOperation) -> Result<OutputKind, Error> {
        Ok(match operation {
            CacheOperation::ExportCache => {
                export_settings(&options)?;
                OutputKind::None
            }
            CacheOperation::ImportCache => {
                import_target(&options)?;
                OutputKind::Directory
            }
        })
    }

    fn export_cache(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let (target, options) = export_settings(&request.options)?;
        remote::export(&target, &options)
    }

    fn import_cache(
        request: Request,
        _source: Option<String>,
    ) -> Result<Vec<ResponseEntry>, Error> {
        let target = import_target(&request.options)?;
        let dest = dest::granted(request.destination)?;
        let dir = dest::preopen(&dest.preopen)?;
        remote::import(&target, &dir)
    }
}

outport_exporter::export_cache_backend!(RegistryCache);
