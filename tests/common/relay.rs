//! Relays (see `relay_core.rs`) between a client and a real server: one
//! counts the requests of a kind a client has in flight at once (`PUT`s:
//! uploads of the s3 cache backend and registry pushes; `GET`s of chosen
//! blobs: a pull's downloads), one answers a registry's transient "blob
//! unknown" to manifest `PUT`s, one turns cross-repository mounts into
//! plain upload sessions (a registry that refuses mounts), one counts blob
//! and manifest downloads, one records every request line, one serves a
//! manifest of its own. Relays that break blob downloads are in
//! `blob_relay.rs`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::relay_core::{Hook, Relay, Request, Verdict, answer};

/// A relay that counts the requests of a kind in flight: one is from its
/// head until the first bytes of its answer are passed on. Those answers
/// are held back until `hold_until` of them have been in flight at once
/// (or, once, 30 s passed), then for `at_least` more, so a client that
/// really sends that many at once is seen doing so however fast the
/// server is, and one that sends more at once is seen sending them.
pub struct InFlight {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Hold>,
    _relay: Relay,
}

/// Which requests count, and how many are in flight.
struct Hold {
    counts: Box<dyn Fn(&Request) -> bool + Send + Sync>,
    hold_until: usize,
    at_least: Duration,
    state: Mutex<Counts>,
    released: Condvar,
}

#[derive(Default)]
struct Counts {
    now: usize,
    peak: usize,
    released: bool,
}

impl InFlight {
    /// Counts `PUT`s, relaying to `upstream` (`host:port`).
    pub fn puts(upstream: &str, hold_until: usize) -> InFlight {
        let counts = |r: &Request| r.method() == "PUT";
        InFlight::start(upstream, Box::new(counts), hold_until, Duration::ZERO)
    }

    /// Counts `GET`s of the blobs `digests`, each answer held back at
    /// least `at_least` (see [`InFlight`]), relaying to `upstream`.
    pub fn blob_gets(
        upstream: &str,
        digests: Vec<String>,
        hold_until: usize,
        at_least: Duration,
    ) -> InFlight {
        let counts = move |r: &Request| {
            r.is_get_of("/blobs/") && digests.iter().any(|d| r.target().ends_with(d.as_str()))
        };
        InFlight::start(upstream, Box::new(counts), hold_until, at_least)
    }

    fn start(
        upstream: &str,
        counts: Box<dyn Fn(&Request) -> bool + Send + Sync>,
        hold_until: usize,
        at_least: Duration,
    ) -> InFlight {
        let hook = Arc::new(Hold {
            counts,
            hold_until,
            at_least,
            state: Mutex::default(),
            released: Condvar::new(),
        });
        let relay = Relay::start(upstream, hook.clone());
        InFlight {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// The most requests seen in flight at once.
    pub fn peak(&self) -> usize {
        self.hook.state.lock().unwrap().peak
    }
}

impl Hook for Hold {
    fn request(&self, request: &mut Request) -> Verdict {
        if (self.counts)(request) {
            let mut counts = self.state.lock().unwrap();
            counts.now += 1;
            counts.peak = counts.peak.max(counts.now);
            if counts.peak >= self.hold_until {
                counts.released = true;
                self.released.notify_all();
            }
        }
        Verdict::Forward
    }

    fn answer(&self, request: &Request, server: &mut TcpStream, client: &mut TcpStream) {
        let mut first = [0u8; 4096];
        let n = server.read(&mut first).unwrap_or(0);
        if (self.counts)(request) {
            let counts = self.state.lock().unwrap();
            let (mut counts, _) = self
                .released
                .wait_timeout_while(counts, Duration::from_secs(30), |c| !c.released)
                .unwrap();
            // Held once at most: after a timeout, answers pass.
            counts.released = true;
            drop(counts);
            std::thread::sleep(self.at_least);
            self.state.lock().unwrap().now -= 1;
        }
        if client.write_all(&first[..n]).is_ok() {
            let _ = std::io::copy(server, client);
        }
    }
}

/// A relay to a registry that answers the first `times` manifest `PUT`s
/// itself, `400` with `MANIFEST_BLOB_UNKNOWN`, as distribution does while
/// another push of the same blob rewrites the repository's link to it;
/// everything else goes through.
pub struct BlobUnknown {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Refuse>,
    _relay: Relay,
}

struct Refuse {
    times: usize,
    refused: AtomicUsize,
}

impl BlobUnknown {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str, times: usize) -> BlobUnknown {
        let hook = Arc::new(Refuse {
            times,
            refused: AtomicUsize::new(0),
        });
        let relay = Relay::start(upstream, hook.clone());
        BlobUnknown {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// How many manifest `PUT`s it answered itself.
    pub fn refused(&self) -> usize {
        self.hook.refused.load(Ordering::SeqCst)
    }
}

impl Hook for Refuse {
    fn request(&self, request: &mut Request) -> Verdict {
        let manifest_put = request.method() == "PUT" && request.target().contains("/manifests/");
        if !manifest_put {
            return Verdict::Forward;
        }
        if self.refused.fetch_add(1, Ordering::SeqCst) < self.times {
            let body = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
            return Verdict::Answer(answer("400 Bad Request", "application/json", body));
        }
        self.refused.fetch_sub(1, Ordering::SeqCst);
        Verdict::Forward
    }
}

/// A relay to a registry that drops the query of every
/// `POST …/blobs/uploads/?mount=…`, so the registry opens an upload session
/// (`202`) instead of mounting: a registry that refuses mounts.
pub struct NoMount {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Unmount>,
    _relay: Relay,
}

#[derive(Default)]
struct Unmount {
    refused: AtomicUsize,
}

impl NoMount {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> NoMount {
        let hook: Arc<Unmount> = Arc::default();
        let relay = Relay::start(upstream, hook.clone());
        NoMount {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// How many mounts it turned into upload sessions.
    pub fn refused(&self) -> usize {
        self.hook.refused.load(Ordering::SeqCst)
    }
}

impl Hook for Unmount {
    fn request(&self, request: &mut Request) -> Verdict {
        if request.method() == "POST" && request.target().contains("/blobs/uploads/?mount=") {
            self.refused.fetch_add(1, Ordering::SeqCst);
            let version = request.line().splitn(3, ' ').nth(2).unwrap_or_default();
            let path = request.target().split('?').next().unwrap_or_default();
            let line = format!("POST {path} {version}");
            request.set_line(&line);
        }
        Verdict::Forward
    }
}

/// A relay to a registry that counts `GET`s of blobs and of manifests.
pub struct BlobGets {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<CountGets>,
    _relay: Relay,
}

#[derive(Default)]
struct CountGets {
    blobs: AtomicUsize,
    manifests: AtomicUsize,
}

impl BlobGets {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> BlobGets {
        let hook: Arc<CountGets> = Arc::default();
        let relay = Relay::start(upstream, hook.clone());
        BlobGets {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// `GET /v2/…/blobs/…` requests seen.
    pub fn blob_gets(&self) -> usize {
        self.hook.blobs.load(Ordering::SeqCst)
    }

    /// `GET /v2/…/manifests/…` requests seen.
    pub fn manifest_gets(&self) -> usize {
        self.hook.manifests.load(Ordering::SeqCst)
    }
}

impl Hook for CountGets {
    fn request(&self, request: &mut Request) -> Verdict {
        if request.is_get_of("/blobs/") {
            self.blobs.fetch_add(1, Ordering::SeqCst);
        }
        if request.is_get_of("/manifests/") {
            self.manifests.fetch_add(1, Ordering::SeqCst);
        }
        Verdict::Forward
    }
}

/// A relay to a registry that records the request line (`METHOD TARGET
/// HTTP/1.1`) of each request.
pub struct Requests {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Lines>,
    _relay: Relay,
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Requests {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Requests {
        let hook: Arc<Lines> = Arc::default();
        let relay = Relay::start(upstream, hook.clone());
        Requests {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// The request lines seen so far.
    pub fn lines(&self) -> Vec<String> {
        self.hook.0.lock().unwrap().clone()
    }
}

impl Hook for Lines {
    fn request(&self, request: &mut Request) -> Verdict {
        if !request.line().is_empty() {
            self.0.lock().unwrap().push(request.line().to_owned());
        }
        Verdict::Forward
    }
}

/// A relay to a registry that answers every manifest `GET` itself with a
/// document of its own: what an old registry serves (a schema 1 manifest),
/// or something that is not a manifest at all.
pub struct Manifest {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    _relay: Relay,
}

struct Serve {
    content_type: String,
    body: String,
}

impl Manifest {
    /// Starts relaying to `upstream` (`host:port`), manifests answered
    /// `200` with `body` of `content_type`.
    pub fn start(upstream: &str, content_type: &str, body: &str) -> Manifest {
        let hook = Serve {
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        };
        let relay = Relay::start(upstream, Arc::new(hook));
        Manifest {
            port: relay.port,
            _relay: relay,
        }
    }
}

impl Hook for Serve {
    fn request(&self, request: &mut Request) -> Verdict {
        if request.is_get_of("/manifests/") {
            return Verdict::Answer(answer("200 OK", &self.content_type, &self.body));
        }
        Verdict::Forward
    }
}
