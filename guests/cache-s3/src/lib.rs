//! outport's S3 cache backend, as a WebAssembly component (world
//! `outport:exporter/networked-cache-backend`), built on the
//! `outport-exporter` SDK.
//!
//! It keeps build caches in a bucket in BuildKit's s3 cache layout, so the
//! two can use each other's caches: each layer blob at
//! `{prefix}{blobs_prefix}{digest}`, and for each `name` the cache config
//! (with every layer's `annotations` giving its media type and size, as
//! BuildKit writes them) at `{prefix}{manifests_prefix}{name}`.
//!
//! - `export-cache` uploads the layers the bucket lacks (`HEAD` first;
//!   `upload_parallelism` uploads at once, the host streaming the bytes
//!   into each `PUT` body) and refreshes those it has that are older than
//!   `touch_refresh` (copied onto themselves), then writes the cache config
//!   under each name.
//! - `import-cache` reads the cache config of the first name and writes it,
//!   with every layer (the host splicing each `GET` body into its file),
//!   as an OCI layout into the destination: an image manifest whose config
//!   is the cache config, listed by `index.json`.
//!
//! The host signs the requests (SigV4) with its own AWS credentials and
//! lets the component reach the endpoint only: it never sees a secret.

mod objects;
mod refresh;

use outport_exporter::bindings::cache::Guest;
use outport_exporter::object_cache;
use outport_exporter::options::{OptionSpec, Parsed, describe};
use outport_exporter::s3::Bucket;
use outport_exporter::{
    CacheOperation, ComponentInfo, Error, Options, OutputKind, Request, ResponseEntry, dest,
};
use refresh::TouchRefresh;

/// The options of both operations (`ignore-error` is the runtime's).
const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once("bucket", "the bucket (required; the host also reads AWS_BUCKET)"),
    OptionSpec::once(
        "region",
        "the bucket's region (required; the host also reads AWS_REGION)",
    ),
    OptionSpec::once(
        "access_key_id",
        "the access key, with secret_access_key (default: the environment's or the shared \
         credentials file's); read by the host and never passed to the component",
    ),
    OptionSpec::once(
        "secret_access_key",
        "the secret of access_key_id; read by the host, which signs every request with it, and \
         never passed to the component",
    ),
    OptionSpec::once(
        "session_token",
        "the session token of temporary credentials given as options; read by the host only",
    ),
    OptionSpec::once("prefix", "prefix of every object key").default(""),
    OptionSpec::once(
        "name",
        "the cache's name(s), `;`-separated: export writes each, import reads the first",
    )
    .default("buildkit"),
    OptionSpec::once("blobs_prefix", "key prefix of the layer blobs, after prefix")
        .default("blobs/"),
    OptionSpec::once(
        "manifests_prefix",
        "key prefix of the cache configs, after prefix",
    )
    .default("manifests/"),
    OptionSpec::once(
        "endpoint_url",
        "http(s)://HOST[:PORT] of an S3-compatible endpoint (default https://s3.REGION.amazonaws.com)",
    ),
    OptionSpec::once(
        "use_path_style",
        "true: address the bucket as /BUCKET/KEY on the endpoint, not as BUCKET.endpoint",
    )
    .default("false"),
    OptionSpec::once(
        "upload_parallelism",
        "how many blob uploads run at once (a positive integer)",
    )
    .default("4"),
    OptionSpec::once(
        "touch_refresh",
        "a blob already in the bucket whose Last-Modified is older than this Go duration (24h, 30m, 1h30m, 0s) is copied onto itself to refresh it",
    )
    .default("24h"),
    OptionSpec::once(
        "disable_accept_encoding",
        "true: send no Accept-Encoding header (by default the host asks for `identity`, signed), for stores behind a front end that rewrites it",
    )
    .default("false"),
    OptionSpec::once(
        "retry_mode",
        "standard or adaptive: how the host retries a request that failed with a 5xx or 429 answer or a dropped connection (adaptive: a throttling answer also slows the instance's next requests)",
    )
    .default("standard"),
    OptionSpec::once(
        "retry_max_attempts",
        "attempts per request the host can send again (no body or a small one; blob uploads are sent once), a positive integer",
    )
    .default("3"),
];

const NAME: &str = "s3 cache";

/// The checked options.
pub struct Settings {
    /// Where the objects are.
    pub bucket: Bucket,
    /// `prefix` + `blobs_prefix`.
    pub blobs: String,
    /// `prefix` + `manifests_prefix`.
    pub manifests: String,
    /// The `name`s, at least one.
    pub names: Vec<String>,
    /// Blob uploads in flight at once.
    pub upload_parallelism: usize,
    /// Age past which a blob already in the bucket is refreshed.
    pub touch_refresh: TouchRefresh,
}

impl Settings {
    fn parse(options: &Options) -> Result<Settings, Error> {
        let parsed = Parsed::new(NAME, OPTIONS, options)?;
        let required = |key: &str| {
            parsed
                .str(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::InvalidOption(format!("{key}= is required")))
        };
        let name = required("bucket")?.to_owned();
        let region = required("region")?;
        let (endpoint, insecure) = match parsed.str("endpoint_url") {
            Some(url) => {
                let (rest, insecure) = match (
                    url.strip_prefix("https://"),
                    url.strip_prefix("http://"),
                ) {
                    (Some(rest), _) => (rest, false),
                    (None, Some(rest)) => (rest, true),
                    _ => {
                        return Err(Error::InvalidOption(format!(
                            "endpoint_url={url:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
                        )));
                    }
                };
                (rest.trim_end_matches('/').to_ascii_lowercase(), insecure)
            }
            None => (format!("s3.{region}.amazonaws.com"), false),
        };
        let upload_parallelism = match parsed.str("upload_parallelism") {
            None => 4,
            Some(n) => n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::InvalidOption(format!(
                    "upload_parallelism={n:?}: expected a positive integer"
                ))
            })?,
        };
        let touch_refresh = match parsed.str("touch_refresh") {
            None => TouchRefresh::DEFAULT,
            Some(text) => {
                TouchRefresh::parse(text).map_err(|e| Error::InvalidOption(e.to_string()))?
            }
        };
        // Read by the host, which signs and retries the requests.
        parsed.bool("disable_accept_encoding", false)?;
        retry_options(&parsed)?;
        let prefix = parsed.str("prefix").unwrap_or("");
        let names = object_cache::names(&parsed)?;
        Ok(Settings {
            bucket: Bucket {
                endpoint,
                insecure,
                name,
                path_style: parsed.bool("use_path_style", false)?,
            },
            blobs: format!("{prefix}{}", parsed.str("blobs_prefix").unwrap_or("blobs/")),
            manifests: format!(
                "{prefix}{}",
                parsed.str("manifests_prefix").unwrap_or("manifests/")
            ),
            names,
            upload_parallelism,
            touch_refresh,
        })
    }
}

/// Checks `retry_mode` and `retry_max_attempts` as the host reads them.
fn retry_options(parsed: &Parsed<'_>) -> Result<(), Error> {
    if let Some(mode) = parsed.str("retry_mode")
        && mode != "standard"
        && mode != "adaptive"
    {
        return Err(Error::InvalidOption(format!(
            "retry_mode={mode:?}: expected \"standard\" or \"adaptive\""
        )));
    }
    if let Some(n) = parsed.str("retry_max_attempts")
        && n.parse::<u32>().ok().filter(|n| *n > 0).is_none()
    {
        return Err(Error::InvalidOption(format!(
            "retry_max_attempts={n:?}: expected a positive integer"
        )));
    }
    Ok(())
}

struct S3Cache;

impl Guest for S3Cache {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "s3".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "keep build caches in an S3 bucket, in BuildKit's s3 cache layout".to_owned(),
            options: describe(OPTIONS),
        }
    }

    fn validate(options: Options, operation: CacheOperation) -> Result<OutputKind, Error> {
        Settings::parse(&options)?;
        Ok(object_cache::output_kind(operation))
    }

    fn export_cache(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let settings = Settings::parse(&request.options)?;
        objects::export(&settings)
    }

    fn import_cache(
        request: Request,
        _source: Option<String>,
    ) -> Result<Vec<ResponseEntry>, Error> {
        let settings = Settings::parse(&request.options)?;
        let dest = dest::granted(request.destination)?;
        let dir = dest::preopen(&dest.preopen)?;
        objects::import(&settings, &dir)
    }
}

outport_exporter::export_cache_backend!(S3Cache);
