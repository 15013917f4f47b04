//! A relay (see `relay_core.rs`) in front of a real HTTP server that
//! misbehaves on purpose: it answers the first requests `503 Service
//! Unavailable` itself, or drops their connections unanswered, or rewrites
//! the `Accept-Encoding` header of every request as Google Cloud Storage's
//! front end does (appending `gzip(gfe)`). It records the
//! `Accept-Encoding` of every request. Its faults can be kept for requests
//! with a body over a size (blob uploads).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::relay_core::{Hook, Relay, Request, Verdict, answer};

/// What the relay does wrong.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answers the first N requests `503` with S3's `SlowDown`.
    Unavailable(usize),
    /// Closes the first N connections once their request head is read.
    Drop(usize),
    /// Appends `, gzip(gfe)` to every `Accept-Encoding`.
    GfeEncoding,
}

/// The relay; stops when dropped.
pub struct Flaky {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Faults>,
    _relay: Relay,
}

/// The fault, the requests it is kept for, and what was seen.
struct Faults {
    fault: Fault,
    body_over: Option<u64>,
    faults: AtomicUsize,
    encodings: Mutex<Vec<Option<String>>>,
}

impl Flaky {
    /// Starts relaying to `upstream` (`host:port`) with `fault`.
    pub fn start(upstream: &str, fault: Fault) -> Flaky {
        Flaky::start_over(upstream, fault, None)
    }

    /// As [`Flaky::start`], the fault kept for requests whose
    /// `Content-Length` is over `body_over` bytes, when given.
    pub fn start_over(upstream: &str, fault: Fault, body_over: Option<u64>) -> Flaky {
        let hook = Arc::new(Faults {
            fault,
            body_over,
            faults: AtomicUsize::new(0),
            encodings: Mutex::default(),
        });
        let relay = Relay::start(upstream, hook.clone());
        Flaky {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// How many requests it answered `503` or dropped.
    pub fn faults(&self) -> usize {
        self.hook.faults.load(Ordering::SeqCst)
    }

    /// The `Accept-Encoding` of each request, as it came (`None`: absent).
    pub fn encodings(&self) -> Vec<Option<String>> {
        self.hook.encodings.lock().unwrap().clone()
    }
}

impl Faults {
    /// Whether `request` gets the fault, one of the first `n` that do.
    fn take_fault(&self, request: &Request, n: usize) -> bool {
        let targeted = self
            .body_over
            .is_none_or(|over| request.content_length().is_some_and(|len| len > over));
        targeted
            && self
                .faults
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                    (f < n).then_some(f + 1)
                })
                .is_ok()
    }
}

impl Hook for Faults {
    fn request(&self, request: &mut Request) -> Verdict {
        let encoding = request.header("accept-encoding").map(str::to_owned);
        self.encodings.lock().unwrap().push(encoding);
        match self.fault {
            Fault::Drop(n) if self.take_fault(request, n) => Verdict::Drop,
            Fault::Unavailable(n) if self.take_fault(request, n) => Verdict::Answer(answer(
                "503 Service Unavailable",
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            )),
            Fault::GfeEncoding => {
                request.edit_header("accept-encoding", |v| Some(format!("{v}, gzip(gfe)")));
                Verdict::Forward
            }
            _ => Verdict::Forward,
        }
    }
}
