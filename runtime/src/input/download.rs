//! Downloading one blob of a `docker://` input into the blob store, when
//! an instance first reads it ([`RegistryFetch`], outport-image's
//! [`Fetch`]): hashed and sized as it streams, at most [`PARALLEL`] at
//! once per registry, a dropped connection resumed with `Range: bytes=N-`
//! where the registry answers `206` (else the blob is downloaded again from
//! its start), [`ATTEMPTS`] tries in all, and a redirect to another host (a
//! registry serving blobs from S3 or a CDN) followed without the
//! registry's credentials.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_RANGE, LOCATION, RANGE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use outport_image::{Descriptor, Fetch, FetchError};
use outport_oci::Sha256Digest;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;

use super::blob_store::{BlobStore, TempBlob};
use super::error::PullError;
use super::remote::{Remote, shown_url};
use crate::host::http::HttpAccess;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::Silent;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

/// Blobs downloaded at once from one registry.
pub(super) const PARALLEL: usize = 4;
/// Tries of one blob download (the first and the resumptions).
pub(super) const ATTEMPTS: u32 = 4;
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// Fetches the layers of a registry image into the blob store on first
/// read.
pub(super) struct RegistryFetch {
    pub(super) remote: Arc<Remote>,
    pub(super) store: BlobStore,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) permits: Arc<Semaphore>,
}

impl std::fmt::Debug for RegistryFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryFetch")
            .field("registry", &self.remote.registry)
            .field("repository", &self.remote.repository)
            .finish()
    }
}

impl Fetch for RegistryFetch {
    fn fetch(&self, descriptor: &Descriptor) -> Result<File, FetchError> {
        let digest = Sha256Digest::parse(descriptor.digest().as_ref())
            .map_err(|e| Arc::new(e) as FetchError)?;
        let size = descriptor.size();
        // Another run may have stored it meanwhile.
        if let Some(file) = self.store.open_blob(&digest, size) {
            return Ok(file);
        }
        // The download runs as a task of the runtime; this thread (a
        // blocking one) waits for it.
        let (remote, store, permits) = (
            Arc::clone(&self.remote),
            self.store.clone(),
            Arc::clone(&self.permits),
        );
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _permit = permits.acquire().await;
            let _ = done.send(download(&remote, &digest, size, &store).await);
        });
        match outcome.recv() {
            Ok(result) => result.map_err(|e| Arc::new(e) as FetchError),
            Err(_) => Err(Arc::new(self.remote.error(
                Method::GET,
                &self.remote.full(&format!("blobs/{}", descriptor.digest())),
                "the download stopped with the run",
            ))),
        }
    }
}

/// Where one download stands: the bytes so far and their hash.
struct Progress {
    file: TempBlob,
    hasher: Sha256,
    got: u64,
}

/// Downloads blob `digest` of `size` bytes into `store`; the stored file.
pub(super) async fn download(
    remote: &Remote,
    digest: &Sha256Digest,
    size: u64,
    store: &BlobStore,
) -> Result<File, PullError> {
    let full = remote.full(&format!("blobs/{digest}"));
    let mut progress = Progress {
        file: store.temp()?,
        hasher: Sha256::new(),
        got: 0,
    };
    let mut attempt = 1;
    loop {
        match try_once(remote, &full, size, &mut progress).await {
            Ok(()) => break,
            Err(Broken::Fatal(e)) => return Err(e),
            Err(Broken::Retry(message)) if attempt >= ATTEMPTS => {
                return Err(remote.error(
                    Method::GET,
                    &full,
                    &format!("{message} ({ATTEMPTS} attempts)"),
                ));
            }
            Err(Broken::Retry(_)) => {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                attempt += 1;
            }
        }
    }
    let actual = Sha256Digest::from_hash(progress.hasher.finalize().into());
    let got = progress.got;
    if got != size || actual != *digest {
        return Err(remote.error(
            Method::GET,
            &full,
            &format!(
                "answered {got} bytes whose digest is {actual}, not the blob's {size} bytes of {digest}"
            ),
        ));
    }
    Ok(progress.file.keep(digest)?)
}

/// Why one try ended early: worth another try (a dropped connection) or
/// not (an answer that will not change).
enum Broken {
    Retry(String),
    Fatal(PullError),
}

impl From<PullError> for Broken {
    fn from(e: PullError) -> Self {
        Broken::Fatal(e)
    }
}

impl From<super::blob_store::StoreError> for Broken {
    fn from(e: super::blob_store::StoreError) -> Self {
        Broken::Fatal(e.into())
    }
}

/// One try: asks for the bytes from `progress.got` on and appends them.
async fn try_once(
    remote: &Remote,
    full: &str,
    size: u64,
    progress: &mut Progress,
) -> Result<(), Broken> {
    let from = progress.got;
    let response = follow(remote, full, from).await?;
    match response.status() {
        StatusCode::PARTIAL_CONTENT if from > 0 => {
            let range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !range.starts_with(&format!("bytes {from}-")) {
                return Err(Broken::Fatal(remote.error(
                    Method::GET,
                    full,
                    &format!("answered the range {range:?} to a request from byte {from}"),
                )));
            }
        }
        StatusCode::OK => {
            if from > 0 {
                // No ranges here: from the start again.
                progress.file.restart()?;
                progress.hasher = Sha256::new();
                progress.got = 0;
            }
        }
        _ => {
            let message = format!("answered {} to a blob download", response.status());
            return Err(Broken::Fatal(remote.error(Method::GET, full, &message)));
        }
    }
    append(remote, full, size, response.into_body(), progress).await
}

/// Appends the body's bytes to the download, hashing them; a broken
/// connection is worth another try.
async fn append(
    remote: &Remote,
    full: &str,
    size: u64,
    mut body: WasiBody,
    progress: &mut Progress,
) -> Result<(), Broken> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Broken::Retry(format!(
                "the download broke after {} of {size} bytes: {e}",
                progress.got
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        progress.got += data.len() as u64;
        if progress.got > size {
            return Err(Broken::Fatal(remote.error(
                Method::GET,
                full,
                &format!("answered more than the {size} bytes of the blob"),
            )));
        }
        progress.hasher.update(&data);
        progress.file.write(&data)?;
    }
    if progress.got < size {
        return Err(Broken::Retry(format!(
            "the download broke after {} of {size} bytes",
            progress.got
        )));
    }
    Ok(())
}

/// Sends the `GET` of blob path `full` (from byte `from`), following
/// redirects: to the registry itself with its access, to another host
/// without any credential (a fresh access allowed that host only), HTTPS
/// unless `--src-insecure`. Returns a success; anything else is an error.
async fn follow(remote: &Remote, full: &str, from: u64) -> Result<Response<WasiBody>, Broken> {
    let mut url = format!("{}{full}", remote.base);
    let mut access = remote.access.clone();
    let mut via = String::new();
    for _ in 0..=MAX_REDIRECTS {
        let mut headers = HeaderMap::new();
        if from > 0
            && let Ok(value) = format!("bytes={from}-").parse()
        {
            headers.insert(RANGE, value);
        }
        let response = match remote.send(&access, &url, headers, full).await {
            Ok(response) => response,
            // A connection that failed may work on the next try.
            Err(e) => return Err(Broken::Retry(format!("{via}{e}"))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let (true, Some(location)) = (status.is_redirection(), location) else {
            return Err(Broken::Fatal(
                remote.refused(&access, response, full, &via).await,
            ));
        };
        let next = resolve(&url, &location)
            .map_err(|why| Broken::Fatal(remote.error(Method::GET, full, &why)))?;
        access = redirect_access(remote, &url, &next, &access)
            .map_err(|why| Broken::Fatal(remote.error(Method::GET, full, &why)))?;
        via = format!("redirected to {}: ", shown_url(&next));
        url = next;
    }
    Err(Broken::Fatal(remote.error(
        Method::GET,
        full,
        &format!("more than {MAX_REDIRECTS} redirects"),
    )))
}

/// The absolute URL a `Location` names, relative to `base`.
fn resolve(base: &str, location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    let uri: http::Uri = base
        .parse()
        .map_err(|e| format!("{}: {e}", shown_url(base)))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!(
            "a redirect to {:?} from {}",
            shown_url(location),
            shown_url(base)
        ));
    };
    if location.starts_with('/') && !location.starts_with("//") {
        return Ok(format!("{scheme}://{authority}{location}"));
    }
    Err(format!(
        "answered a redirect to {:?}, which is not followed",
        shown_url(location)
    ))
}

/// The access for a request to `next` redirected from `from`: the same to
/// the same host, else one with no credential allowed only `next`'s host;
/// plain HTTP only with `--src-insecure`.
fn redirect_access(
    remote: &Remote,
    from: &str,
    next: &str,
    access: &HttpAccess,
) -> Result<HttpAccess, String> {
    let shown = shown_url(next);
    let parsed: http::Uri = next
        .parse()
        .map_err(|e| format!("a redirect to {shown}: {e}"))?;
    if parsed.scheme_str() == Some("http") && !remote.insecure {
        return Err(format!(
            "answered a redirect to plain HTTP ({shown}), which is not followed without --src-insecure"
        ));
    }
    let Some(authority) = parsed.authority() else {
        return Err(format!("a redirect to {shown}, which names no host"));
    };
    let before: Option<http::Uri> = from.parse().ok();
    if before.as_ref().and_then(http::Uri::authority) == Some(authority) {
        return Ok(access.clone());
    }
    let port = authority
        .port_u16()
        .unwrap_or(if parsed.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let allowed = AllowList::parse(&[format!("{}:{port}", authority.host())])
        .map_err(|e| format!("a redirect to {shown}: {e}"))?;
    Ok(HttpAccess::new(
        "input",
        allowed,
        Credentials::default(),
        &Limits::default(),
        Arc::new(Silent),
    ))
}

#[cfg(test)]
mod tests;
