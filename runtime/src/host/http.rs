//! Outgoing HTTP for components (`wasi:http`, from `wasmtime-wasi-http`),
//! with the host in charge of where requests go and what they carry.
//!
//! Every request a guest sends passes [`HttpAccess::send`]:
//!
//! - its host and port must be in the instance's [`AllowList`]; any other is
//!   refused with `HTTP-request-denied` (and a log line naming the host);
//! - credentials for the registry it is sent to (from the docker config,
//!   [`Credentials`]) are added by the host: a cached bearer token for the
//!   repository, else basic auth. A guest may not set `authorization`
//!   itself, and never sees a credential or a token;
//! - a `401` with a bearer challenge makes the host fetch a token from the
//!   realm (the host contacts the realm, not the guest), cache it per
//!   registry and scope, and repeat a request without a body; a request
//!   with a streaming body gets the `401` (its body is gone) and the next
//!   one uses the cached token;
//! - a request to the instance's storage endpoint (the `s3` cache
//!   backend's S3 endpoint, the `azblob` one's Azure Storage account:
//!   [`Signing`]) is signed by the host instead (SigV4, Shared Key or a SAS
//!   token); a `403` or `401` from it is logged as refused credentials,
//!   and a `5xx`, `429` or failed connection is retried when the host can
//!   send the request again (`signed`);
//! - connect, first-byte and between-bytes timeouts come from the limits
//!   (a guest may ask for shorter ones);
//! - every failure is logged as one line naming the host.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks, default_send_request,
};

use crate::outbound::docker_config::{Credentials, Login};
use crate::outbound::registry_auth::{Challenge, TokenCache, fetch_token, repository_of};
use crate::outbound::signing::Signing;
use crate::run::reporter::{LogLevel, Reporter};
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

mod signed;
mod spool;

/// A future the hooks hand back to `wasmtime-wasi-http`.
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// One instance's outgoing HTTP: its allow-list, credentials, token cache
/// and timeouts. Cheap to clone (shared state).
#[derive(Clone)]
pub struct HttpAccess {
    inner: Arc<Inner>,
}

struct Inner {
    instance_id: String,
    allowed: AllowList,
    credentials: Credentials,
    signing: Option<Signing>,
    tokens: Mutex<TokenCache>,
    options: RequestOptions,
    reporter: Arc<dyn Reporter>,
    /// The last problem the host saw, added to the instance's error.
    problem: Mutex<Option<String>>,
    /// The instance's deadline: no retry waits past it.
    deadline: Option<Instant>,
    /// After a throttling answer in `adaptive` retry mode, no request to
    /// the storage endpoint starts before this.
    paused_until: Mutex<Option<Instant>>,
    /// Request bodies spooled to be sent again, against the instance's
    /// `scratch` budget.
    scratch: Arc<spool::ScratchUse>,
}

impl HttpAccess {
    /// Access for instance `instance_id`: only hosts in `allowed`, with
    /// `credentials` and the HTTP timeouts of `limits`.
    pub fn new(
        instance_id: &str,
        allowed: AllowList,
        credentials: Credentials,
        limits: &Limits,
        reporter: Arc<dyn Reporter>,
    ) -> Self {
        HttpAccess {
            inner: Arc::new(Inner {
                instance_id: instance_id.to_string(),
                allowed,
                credentials,
                signing: None,
                tokens: Mutex::new(TokenCache::default()),
                options: RequestOptions {
                    connect_timeout: Some(limits.http_connect_timeout),
                    first_byte_timeout: Some(limits.http_first_byte_timeout),
                    between_bytes_timeout: Some(limits.http_between_bytes_timeout),
                },
                reporter,
                problem: Mutex::new(None),
                deadline: Instant::now().checked_add(limits.timeout),
                paused_until: Mutex::new(None),
                scratch: Arc::new(spool::ScratchUse::new(limits.scratch_bytes)),
            }),
        }
    }

    /// The same access, with requests to the storage endpoint of
    /// `signing` signed by the host. Call before the access is cloned.
    pub fn with_signing(mut self, signing: Signing) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.signing = Some(signing);
        }
        self
    }

    /// The last problem the host saw with this instance's requests (a
    /// refused host, missing credentials, a failed connection), if any.
    pub fn problem(&self) -> Option<String> {
        self.inner.problem.lock().ok()?.clone()
    }

    /// Sends a request of the host's own (pulling or pushing a component,
    /// see [`crate::components::artifact`]) under the same rules as a guest's: allowed
    /// hosts, credentials, tokens, timeouts. The connection is driven by a
    /// task of the current runtime.
    pub async fn send_own(&self, request: Request<WasiBody>) -> Result<Response<WasiBody>, Error> {
        let (response, io) = self.inner.clone().send(request, None).await?;
        tokio::spawn(Box::into_pin(io));
        Ok(response)
    }

    /// The hosts it may reach.
    #[cfg(test)]
    pub(crate) fn allowed(&self) -> &AllowList {
        &self.inner.allowed
    }

    /// The credentials it adds.
    #[cfg(test)]
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// Whether `other` is a clone of it (the same credentials and tokens).
    #[cfg(test)]
    pub(crate) fn is_clone_of(&self, other: &HttpAccess) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// No network at all.
    pub fn denied(instance_id: &str, reporter: Arc<dyn Reporter>) -> Self {
        HttpAccess::new(
            instance_id,
            AllowList::default(),
            Credentials::default(),
            &Limits::default(),
            reporter,
        )
    }
}

impl Inner {
    /// Logs a problem and keeps it for the instance's error.
    fn problem(&self, message: &str) {
        let message = &*crate::sandbox::text::one_line(message);
        self.reporter.log(
            &self.instance_id,
            LogLevel::Error,
            &format!("wasi:http: {message}"),
        );
        if let Ok(mut slot) = self.problem.lock() {
            *slot = Some(message.to_string());
        }
    }

    /// The guest's timeouts, none longer than the limits'.
    fn timeouts(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let pick =
            |a: Option<std::time::Duration>, limit: Option<std::time::Duration>| match (a, limit) {
                (Some(a), Some(l)) => Some(a.min(l)),
                (a, l) => a.or(l),
            };
        RequestOptions {
            connect_timeout: pick(asked.connect_timeout, self.options.connect_timeout),
            first_byte_timeout: pick(asked.first_byte_timeout, self.options.first_byte_timeout),
            between_bytes_timeout: pick(
                asked.between_bytes_timeout,
                self.options.between_bytes_timeout,
            ),
        }
    }

    async fn send(
        self: Arc<Self>,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let uri = request.uri().clone();
        let Some(authority) = uri.authority().cloned() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        self.check_allowed(&authority, tls)?;
        let registry = authority.as_str().to_string();
        if let Some(signing) = self.signing.as_ref().filter(|s| s.covers(&registry)) {
            return self.send_signed(signing, request, options, &registry).await;
        }
        let login = match self.credentials.lookup(&registry).await {
            Ok(login) => login,
            Err(e) => {
                let message = format!("{registry}: {e}");
                self.problem(&message);
                return Err(Error::InternalError(Some(message)));
            }
        };
        let to = Registry {
            name: &registry,
            repository: repository_of(uri.path()),
            login: login.as_ref(),
        };
        let options = self.timeouts(options);
        // A request without a body can be sent again after a challenge.
        let replay = (request.method() == Method::GET
            || request.method() == Method::HEAD
            || request.headers().get(http::header::CONTENT_LENGTH)
                == Some(&HeaderValue::from_static("0")))
        .then(|| copy_head(&request));

        let mut request = request;
        self.authorize(&mut request, &to);
        let (response, io) = self.forward(request, options, &registry).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, io));
        }
        self.answer_challenge((response, io), replay, &to, options)
            .await
    }

    /// Refuses (and logs) a request to a host on a port the instance may
    /// not reach (`tls`: the default port is 443, else 80).
    fn check_allowed(&self, authority: &Authority, tls: bool) -> Result<(), Error> {
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        if self.allowed.allows(authority.host(), port) {
            return Ok(());
        }
        let allowed = if self.allowed.is_empty() {
            "none".to_string()
        } else {
            self.allowed.to_string()
        };
        self.problem(&format!(
            "request to {authority} refused: not among the hosts this instance may reach ({allowed}); see network-hosts in the policy"
        ));
        Err(Error::HttpRequestDenied)
    }

    /// After a `401` from `to`: with a bearer challenge, fetches and caches
    /// a token and sends `replay` (the request again, when it had no body)
    /// with it; else logs why the registry refused. The guest gets the
    /// `401` when the request cannot be repeated.
    async fn answer_challenge(
        &self,
        (response, io): (Response<WasiBody>, IoFuture),
        replay: Option<Request<WasiBody>>,
        to: &Registry<'_>,
        options: RequestOptions,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let registry = to.name;
        let challenge = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Challenge::parse);
        let Some(challenge @ Challenge::Bearer { .. }) = challenge else {
            let why = if to.login.is_some() {
                "the registry refused the credentials"
            } else {
                "no credentials for it"
            };
            self.problem(&format!(
                "{registry} answered 401 Unauthorized: {why} (docker config: {})",
                self.credentials.path()
            ));
            return Ok((response, io));
        };
        match fetch_token(&challenge, to.login, options).await {
            Ok(token) => {
                let scope = match &challenge {
                    Challenge::Bearer { scope, .. } => scope.clone().unwrap_or_default(),
                    Challenge::Basic => String::new(),
                };
                self.tokens
                    .lock()
                    .map_err(|_| Error::InternalError(Some("token cache poisoned".into())))?
                    .insert(registry, &scope, token);
            }
            Err(message) => {
                self.problem(&format!("{registry}: cannot get a token: {message}"));
                return Ok((response, io));
            }
        }
        match replay {
            Some(mut again) => {
                drop(response);
                self.authorize(&mut again, to);
                self.forward(again, options, registry).await
            }
            None => Ok((response, io)),
        }
    }

    /// Sets the `authorization` header for `to`: a cached token, else
    /// basic auth.
    fn authorize(&self, request: &mut Request<WasiBody>, to: &Registry<'_>) {
        let token = self
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.find(to.name, to.repository).map(str::to_string));
        let value = match (token, to.login) {
            (Some(token), _) => format!("Bearer {token}"),
            // An identity token is only ever sent to the token realm.
            (None, Some(login)) if login.identity_token().is_none() => login.basic(),
            (None, _) => return,
        };
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
        }
    }

    /// Sends `request` as it is; a failure is logged naming the host.
    async fn forward(
        &self,
        request: Request<WasiBody>,
        options: RequestOptions,
        registry: &str,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let what = request_line(&request, registry);
        self.forward_quietly(request, options, &what)
            .await
            .inspect_err(|e| self.problem(&format!("{what} failed: {}", one_line(e))))
    }

    /// Sends `request` as it is (`what`: it as [`request_line`] names it);
    /// a failure is the caller's to report.
    async fn forward_quietly(
        &self,
        request: Request<WasiBody>,
        options: RequestOptions,
        what: &str,
    ) -> Result<(Response<WasiBody>, IoFuture), Error> {
        let (response, io) = default_send_request(request, Some(options)).await?;
        tracing::debug!(
            "[{}] wasi:http: {what} -> {}",
            self.instance_id,
            response.status().as_u16()
        );
        Ok((
            response.map(BodyExt::boxed_unsync),
            Box::new(io) as IoFuture,
        ))
    }
}

/// The registry a request goes to: its `host[:port]`, the repository the
/// request is about (for a cached token's scope) and the login for it.
struct Registry<'a> {
    name: &'a str,
    repository: Option<&'a str>,
    login: Option<&'a Login>,
}

/// `METHOD host[:port]/path`: a request to `to` as logs and errors name it
/// (without its query, which may carry a signature).
fn request_line(request: &Request<WasiBody>, to: &str) -> String {
    format!("{} {to}{}", request.method(), request.uri().path())
}

/// A request with the method, URI and headers of `request` and no body.
fn copy_head(request: &Request<WasiBody>) -> Request<WasiBody> {
    let mut copy = Request::new(empty_body());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn empty_body() -> WasiBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error's message on one line.
fn one_line(e: &Error) -> String {
    e.to_string().replace('\n', " ")
}

impl WasiHttpHooks for HttpAccess {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        // Credentials are the host's to add: a guest may not set its own.
        Arc::new(|name: &HeaderName| {
            name == AUTHORIZATION
                || name == PROXY_AUTHORIZATION
                || DEFAULT_FORBIDDEN_HEADERS.contains(name)
        })
    }

    fn p2_error_from_connect(&mut self, err: &std::io::Error) -> ErrorCode {
        // The failure is logged, naming the host, where it happens.
        match err.kind() {
            std::io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
            _ => ErrorCode::ConnectionRefused,
        }
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), Error>> + Send> {
        Box::new(self.inner.clone().send(request, options))
    }
}
