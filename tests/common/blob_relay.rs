//! Relays (see `relay_core.rs`) to a registry that break blob downloads
//! the way networks and registries do: [`CutBlobs`] cuts blob answers
//! after some bytes (a dropped connection), optionally hiding the
//! registry's `Range` support; [`Redirects`] answers blob (or manifest)
//! `GET`s with a `307` to another address, as registries send blobs to S3
//! or a CDN, and records the requests that reach that address.

use std::io::Read as _;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::relay_core::{Hook, Relay, Request, Verdict};

/// Cuts the first `cuts` blob answers longer than `after` bytes after
/// that many bytes.
pub struct CutBlobs {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    hook: Arc<Cut>,
    _relay: Relay,
}

struct Cut {
    cuts: usize,
    after: u64,
    ranges: bool,
    cut: AtomicUsize,
    ranged: AtomicUsize,
    blob_gets: AtomicUsize,
}

impl CutBlobs {
    /// Starts relaying to `upstream` (`host:port`); `cuts` answers are cut
    /// (`usize::MAX`: every one); without `ranges`, the `Range` header of
    /// requests is dropped, so the registry answers whole blobs.
    pub fn start(upstream: &str, cuts: usize, after: u64, ranges: bool) -> CutBlobs {
        let hook = Arc::new(Cut {
            cuts,
            after,
            ranges,
            cut: AtomicUsize::new(0),
            ranged: AtomicUsize::new(0),
            blob_gets: AtomicUsize::new(0),
        });
        let relay = Relay::start(upstream, hook.clone());
        CutBlobs {
            port: relay.port,
            hook,
            _relay: relay,
        }
    }

    /// Blob answers cut.
    pub fn cut(&self) -> usize {
        self.hook.cut.load(Ordering::SeqCst)
    }

    /// Requests that carried a `Range` header.
    pub fn ranged(&self) -> usize {
        self.hook.ranged.load(Ordering::SeqCst)
    }

    /// `GET`s of blobs.
    pub fn blob_gets(&self) -> usize {
        self.hook.blob_gets.load(Ordering::SeqCst)
    }
}

impl Hook for Cut {
    fn request(&self, request: &mut Request) -> Verdict {
        if request.is_get_of("/blobs/") {
            self.blob_gets.fetch_add(1, Ordering::SeqCst);
        }
        if request.header("range").is_some() {
            self.ranged.fetch_add(1, Ordering::SeqCst);
            if !self.ranges {
                request.edit_header("range", |_| None);
            }
        }
        Verdict::Forward
    }

    fn answer(&self, request: &Request, server: &mut TcpStream, client: &mut TcpStream) {
        if !request.is_get_of("/blobs/") || self.cut.load(Ordering::SeqCst) >= self.cuts {
            let _ = std::io::copy(server, client);
            return;
        }
        let sent = std::io::copy(&mut (&mut *server).take(self.after), client).unwrap_or(0);
        if sent == self.after {
            self.cut.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        } else {
            let _ = std::io::copy(server, client);
        }
    }
}

/// Answers blob `GET`s (with `manifests`, manifest `GET`s too) with a
/// `307` to the same path on a second relay, to `elsewhere`; forwards the
/// rest to `upstream`. The second relay records every request head.
pub struct Redirects {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The port of the relay redirected to.
    pub elsewhere_port: u16,
    seen: Arc<Record>,
    _relays: [Relay; 2],
}

/// Records every request head.
#[derive(Default)]
struct Record(Mutex<Vec<String>>);

impl Hook for Record {
    fn request(&self, request: &mut Request) -> Verdict {
        self.0.lock().unwrap().push(request.head.clone());
        Verdict::Forward
    }
}

/// Redirects `GET`s to the relay on `elsewhere_port`.
struct Redirect {
    elsewhere_port: u16,
    manifests: bool,
}

impl Hook for Redirect {
    fn request(&self, request: &mut Request) -> Verdict {
        if request.is_get_of("/blobs/") || (self.manifests && request.is_get_of("/manifests/")) {
            return Verdict::Answer(format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{}{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.elsewhere_port,
                request.target()
            ));
        }
        Verdict::Forward
    }
}

impl Redirects {
    /// Starts both relays.
    pub fn start(upstream: &str, elsewhere: &str, manifests: bool) -> Redirects {
        let seen: Arc<Record> = Arc::default();
        let elsewhere = Relay::start(elsewhere, seen.clone());
        let redirect = Redirect {
            elsewhere_port: elsewhere.port,
            manifests,
        };
        let front = Relay::start(upstream, Arc::new(redirect));
        Redirects {
            port: front.port,
            elsewhere_port: elsewhere.port,
            seen,
            _relays: [front, elsewhere],
        }
    }

    /// The request heads the second relay received.
    pub fn seen_elsewhere(&self) -> Vec<String> {
        self.seen.0.lock().unwrap().clone()
    }
}
