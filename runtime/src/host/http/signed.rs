//! Requests to the instance's storage endpoint (the `s3` and `azblob` cache
//! backends): signed by the host, and sent again, re-signed, when they fail
//! in a way worth retrying ([`RetryPolicy`]) and the host can send them
//! again.
//!
//! The host can send a request again when it holds its whole body: none
//! (`GET`, `HEAD`, a copy of an object onto itself), a body whose
//! `content-length` is at most [`REPLAYABLE`] bytes (a cache config),
//! which it reads into memory before the first attempt, or a larger one
//! (a blob upload) that it spools to an unlinked temporary file first,
//! charged against the instance's `scratch` budget ([`Spool`]). A body
//! without a `content-length`, or one the budget cannot take, is streamed
//! and sent once: its bytes are gone once sent, so its failure goes back
//! to the component, which fails with it.

use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::spool::Spool;
use super::{Inner, IoFuture, copy_head, one_line, request_line};
use crate::outbound::retry::{RetryMode, RetryPolicy};
use crate::outbound::signing::Signing;
use crate::run::reporter::LogLevel;

/// The largest body the host holds to be able to send a request again.
pub const REPLAYABLE: u64 = 1 << 20;

/// A request as the host holds it.
enum Held {
    /// Its head and whole body: it can be sent again.
    Again(Request<WasiBody>, Bytes),
    /// Its head and its body in a file: it can be sent again.
    Spooled(Request<WasiBody>, Spool),
    /// A streamed body: sent once.
    Once(Request<WasiBody>),
}

/// What one attempt got.
type Outcome = Result<(Response<WasiBody>, IoFuture), Error>;

impl Inner {
    /// Signs `request` for the storage endpoint and sends it, again while
    /// it fails in a way worth retrying and the policy, the instance's
    /// deadline and its body allow; a refusal of the credentials, or the
    /// last failure, is logged naming the endpoint.
    pub(super) async fn send_signed(
        &self,
        signing: &Signing,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        endpoint: &str,
    ) -> Outcome {
        let options = self.timeouts(options);
        let policy = signing.retry();
        let what = request_line(&request, endpoint);
        let (head, body) = match self.hold(request).await {
            Ok(Held::Once(request)) => {
                let outcome = self
                    .attempt(signing, request, options, endpoint, &what)
                    .await;
                return self.report(signing, outcome, endpoint, &what, 1);
            }
            Ok(Held::Again(head, body)) => (head, Replay::Memory(body)),
            Ok(Held::Spooled(head, spool)) => (head, Replay::File(spool)),
            Err(e) => {
                self.problem(&format!(
                    "{what}: reading the request body: {}",
                    one_line(&e)
                ));
                return Err(e);
            }
        };
        let mut attempt = 1;
        loop {
            self.wait_out_throttling(policy).await;
            let mut request = copy_head(&head);
            *request.body_mut() = body.again();
            let outcome = self
                .attempt(signing, request, options, endpoint, &what)
                .await;
            let Some(why) = worth_retrying(&outcome) else {
                return self.report(signing, outcome, endpoint, &what, attempt);
            };
            let wait = RetryPolicy::backoff(attempt);
            let past_deadline = self.deadline.is_some_and(|d| Instant::now() + wait >= d);
            if attempt >= policy.max_attempts || past_deadline {
                return self.report(signing, outcome, endpoint, &what, attempt);
            }
            if let Ok((response, _)) = &outcome {
                self.note_throttling(policy, response.status(), wait);
            }
            drop(outcome);
            attempt += 1;
            self.reporter.log(
                &self.instance_id,
                LogLevel::Warn,
                &format!(
                    "wasi:http: {what}: {why}; attempt {attempt} of {} in {:.1} s",
                    policy.max_attempts,
                    wait.as_secs_f64()
                ),
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Signs `request` (`what`, to `endpoint`) and sends it once.
    async fn attempt(
        &self,
        signing: &Signing,
        mut request: Request<WasiBody>,
        options: RequestOptions,
        endpoint: &str,
        what: &str,
    ) -> Outcome {
        if let Err(e) = signing.sign(&mut request) {
            let message = format!("{endpoint}: cannot sign the request: {e}");
            self.problem(&message);
            return Err(Error::InternalError(Some(message)));
        }
        self.forward_quietly(request, options, what).await
    }

    /// Logs what the last attempt at `what` got when it is a failure, and
    /// hands it on.
    fn report(
        &self,
        signing: &Signing,
        outcome: Outcome,
        endpoint: &str,
        what: &str,
        attempts: u32,
    ) -> Outcome {
        let tries = match attempts {
            1 => String::new(),
            n => format!(" ({n} attempts)"),
        };
        match &outcome {
            Ok((response, _)) => {
                let status = response.status();
                if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
                    self.problem(&signing.refused(endpoint, status));
                } else if attempts > 1 && RetryPolicy::retries_status(status) {
                    self.problem(&format!("{what}: answered {status}{tries}"));
                }
            }
            Err(e) => self.problem(&format!("{what} failed: {}{tries}", one_line(e))),
        }
        outcome
    }

    /// In `adaptive` mode, waits until a pause set by a throttling answer
    /// is over.
    async fn wait_out_throttling(&self, policy: RetryPolicy) {
        if policy.mode != RetryMode::Adaptive {
            return;
        }
        let until = self.paused_until.lock().ok().and_then(|slot| *slot);
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// In `adaptive` mode, a throttling answer pauses every request for
    /// `wait`.
    fn note_throttling(&self, policy: RetryPolicy, status: StatusCode, wait: std::time::Duration) {
        if policy.mode != RetryMode::Adaptive || !RetryPolicy::is_throttling(status) {
            return;
        }
        if let Ok(mut slot) = self.paused_until.lock() {
            let until = Instant::now() + wait;
            *slot = Some(slot.map_or(until, |u| u.max(until)));
        }
    }
}

/// Why `outcome` is worth another attempt: a `5xx` or `429` answer, or a
/// connection that failed, was dropped or timed out.
fn worth_retrying(outcome: &Outcome) -> Option<String> {
    match outcome {
        Ok((response, _)) if RetryPolicy::retries_status(response.status()) => {
            Some(format!("answered {}", response.status()))
        }
        Ok(_) => None,
        Err(
            e @ (Error::Hyper(_)
            | Error::Connect(_)
            | Error::ConnectionRefused
            | Error::ConnectionTerminated
            | Error::ConnectionTimeout
            | Error::ConnectionReadTimeout
            | Error::ConnectionWriteTimeout
            | Error::HttpResponseIncomplete
            | Error::HttpResponseTimeout
            | Error::HttpProtocolError),
        ) => Some(one_line(e)),
        Err(_) => None,
    }
}

/// A body the host can send again.
enum Replay {
    /// Held in memory.
    Memory(Bytes),
    /// Spooled to a file.
    File(Spool),
}

impl Replay {
    /// The whole body, for one more attempt.
    fn again(&self) -> WasiBody {
        match self {
            Replay::Memory(bytes) => Full::new(bytes.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
            Replay::File(spool) => spool.body(),
        }
    }
}

impl Inner {
    /// Reads the body of `request` when the host can hold it: none
    /// declared on a `GET` or `HEAD`, a `content-length` of at most
    /// [`REPLAYABLE`] in memory, a larger one in a file when the
    /// instance's scratch budget can take it.
    async fn hold(&self, request: Request<WasiBody>) -> Result<Held, Error> {
        let length = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let small = match length {
            Some(n) if n > REPLAYABLE => {
                let Some(charge) = self.scratch.charge(n) else {
                    return Ok(Held::Once(request));
                };
                let head = copy_head(&request);
                let spool = Spool::fill(request.into_body(), charge, self.deadline).await?;
                return Ok(Held::Spooled(head, spool));
            }
            Some(_) => true,
            None => request.method() == Method::GET || request.method() == Method::HEAD,
        };
        if !small {
            return Ok(Held::Once(request));
        }
        hold_small(request).await
    }
}

/// Reads the whole body of `request`, at most [`REPLAYABLE`] bytes.
async fn hold_small(request: Request<WasiBody>) -> Result<Held, Error> {
    let head = copy_head(&request);
    // REPLAYABLE fits a usize on every target outport builds for.
    let limit = usize::try_from(REPLAYABLE).unwrap_or(usize::MAX);
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|e| match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::InternalError(Some(e.to_string())),
        })?
        .to_bytes();
    Ok(Held::Again(head, body))
}
