//! outport's Azure Blob Storage cache backend, as a WebAssembly component
//! (world `outport:exporter/networked-cache-backend`), built on the
//! `outport-exporter` SDK.
//!
//! It keeps build caches in a container in BuildKit's azblob cache layout,
//! so the two can use each other's caches: each layer blob at
//! `PREFIX/BLOBS_PREFIX/DIGEST`, and for each `name` the cache config (with
//! every layer's `annotations` giving its media type and size) at
//! `PREFIX/MANIFESTS_PREFIX/NAME`, the parts joined as BuildKit joins them
//! (empty ones left out).
//!
//! - `export-cache` creates the container when it is missing (as BuildKit
//!   does), uploads the layers it lacks (`HEAD` first; four at once, the
//!   host streaming the bytes into each `PUT` body, `If-None-Match: *`),
//!   then writes the cache config under each name.
//! - `import-cache` reads the cache config of the first name that exists
//!   and writes it, with every layer (the host splicing each `GET` body
//!   into its file), as an OCI layout into the destination.
//!
//! The host authorises every request (Shared Key with the account key, or
//! the SAS token of `account_url`), lets the component reach the account
//! endpoint only and gives it neither the key nor the token.

use outport_exporter::azblob::Container;
use outport_exporter::bindings::cache::Guest;
use outport_exporter::cache::{CACHE_CONFIG, CacheImage};
use outport_exporter::object_cache::{self, Keys, annotated_config};
use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::{
    Blob, CacheOperation, ComponentInfo, Error, Options, OutputKind, Request, ResponseEntry, dest,
    image, log, response,
};

/// The options of both operations (`ignore-error` is the runtime's).
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once(
        "account_url",
        "http(s)://HOST[:PORT][/PATH] of the storage account (required; the host also reads \
         BUILDKIT_AZURE_STORAGE_ACCOUNT_URL, and keeps a SAS token in its query to itself)",
    ),
    OptionSpec::once(
        "account_name",
        "the storage account (default: BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME, else from account_url)",
    ),
    OptionSpec::once(
        "secret_access_key",
        "the account key (default: BUILDKIT_AZURE_STORAGE_ACCESS_KEY); read by the host, which \
         signs every request with it, and never passed to the component",
    ),
    OptionSpec::once("container", "the container, created by an export when missing")
        .default("buildkit-cache"),
    OptionSpec::once("prefix", "path prefix of every blob name").default(""),
    OptionSpec::once(
        "name",
        "the cache's name(s), `;`-separated: export writes each, import reads the first that exists",
    )
    .default("buildkit"),
    OptionSpec::once("blobs_prefix", "path of the layer blobs, after prefix").default("blobs"),
    OptionSpec::once("manifests_prefix", "path of the cache configs, after prefix")
        .default("manifests"),
];

const NAME: &str = "azblob cache";
/// Blob uploads in flight at once (BuildKit's `IOConcurrency`).
const UPLOAD_PARALLELISM: usize = 4;

/// The checked options.
struct Settings {
    container: Container,
    /// `PREFIX/BLOBS_PREFIX/` (or empty).
    blobs: String,
    /// `PREFIX/MANIFESTS_PREFIX/` (or empty).
    manifests: String,
    /// The `name`s, at least one.
    names: Vec<String>,
}

impl Settings {
    fn parse(options: &Options) -> Result<Settings, Error> {
        let parsed = Parsed::new(NAME, OPTIONS, options)?;
        let url = parsed
            .str("account_url")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::InvalidOption("account_url= is required".to_owned()))?;
        let (rest, insecure) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            _ => {
                return Err(Error::InvalidOption(format!(
                    "account_url={url:?}: expected http://HOST[:PORT][/PATH] or https://..."
                )));
            }
        };
        if rest.contains(['?', '#', '@']) {
            return Err(Error::InvalidOption(
                "account_url: the component takes no query (a SAS token is the host's)".to_owned(),
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let container = parsed.str("container").unwrap_or("buildkit-cache");
        if container.is_empty() || container.contains('/') {
            return Err(Error::InvalidOption(format!(
                "container={container:?}: expected a container name"
            )));
        }
        let names = object_cache::names(&parsed)?;
        let prefix = parsed.str("prefix").unwrap_or("");
        Ok(Settings {
            container: Container {
                authority: authority.to_ascii_lowercase(),
                insecure,
                base_path: path.trim_end_matches('/').to_owned(),
                name: container.to_owned(),
            },
            blobs: dir(&[prefix, parsed.str("blobs_prefix").unwrap_or("blobs")]),
            manifests: dir(&[
                prefix,
                parsed.str("manifests_prefix").unwrap_or("manifests"),
            ]),
            names,
        })
    }

    fn keys(&self) -> Keys<'_> {
        Keys {
            blobs: &self.blobs,
            manifests: &self.manifests,
        }
    }
}

/// `parts` joined with `/` as Go's `path.Join` joins them (empty parts and
/// extra slashes left out), with a trailing `/` unless empty.
fn dir(parts: &[&str]) -> String {
    let joined: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("{}/", joined.join("/"))
    }
}

/// Creates the container when missing, uploads the layers it lacks, then
/// writes the cache config under every name.
fn export(settings: &Settings) -> Result<Vec<ResponseEntry>, Error> {
    let cache = CacheImage::read()?;
    let container = &settings.container;
    if !container.exists()? {
        log::info(&format!("creating container {}", container.name));
        container.create()?;
    }
    let mut missing: Vec<(String, &Blob)> = Vec::new();
    for (desc, blob) in &cache.layers {
        let key = format!("{}{}", settings.blobs, desc.digest);
        if !container.blob_exists(&key)? {
            missing.push((key, blob));
        }
    }
    let present = cache.layers.len() - missing.len();
    container.put_blobs(&missing, UPLOAD_PARALLELISM)?;
    let config = annotated_config(&cache)?;
    for name in &settings.names {
        container.put_bytes(&format!("{}{name}", settings.manifests), &config)?;
    }
    let stored = image::put_blob(CACHE_CONFIG, &config)?.descriptor();
    log::info(&format!(
        "cache {}: {} blobs uploaded, {present} already in the container",
        settings.names.join(";"),
        missing.len()
    ));
    Ok(vec![
        response::entry("cache.digest", stored.digest),
        response::entry("cache.azblob.uploaded", missing.len().to_string()),
        response::entry("cache.azblob.present", present.to_string()),
    ])
}

struct AzblobCache;

impl Guest for AzblobCache {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "azblob".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "keep build caches in an Azure Blob Storage container, in BuildKit's azblob \
                      cache layout"
                .to_owned(),
            options: describe(OPTIONS),
        }
    }

    fn validate(options: Options, operation: CacheOperation) -> Result<OutputKind, Error> {
        Settings::parse(&options)?;
        Ok(object_cache::output_kind(operation))
    }

    fn export_cache(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        export(&Settings::parse(&request.options)?)
    }

    fn import_cache(
        request: Request,
        _source: Option<String>,
    ) -> Result<Vec<ResponseEntry>, Error> {
        let settings = Settings::parse(&request.options)?;
        let dest = dest::granted(request.destination)?;
        let dir = dest::preopen(&dest.preopen)?;
        if !settings.container.exists()? {
            return Err(Error::InvalidOption(format!(
                "container {} does not exist: no cache to import",
                settings.container.name
            )));
        }
        object_cache::import(&settings.container, &settings.keys(), &settings.names, &dir)
    }
}

outport_exporter::export_cache_backend!(AzblobCache);

#[cfg(test)]
mod tests {
    use super::dir;

    #[test]
    fn keys_join_as_buildkit() {
        assert_eq!(dir(&["", "blobs"]), "blobs/");
        assert_eq!(dir(&["team/", "/manifests/"]), "team/manifests/");
        assert_eq!(dir(&["", ""]), "");
    }
}
