//! TCP relays between a client and a real server: one counts the `PUT`
//! requests a client has in flight at once (uploads several at once: the s3
//! cache backend, registry pushes), one answers a registry's transient
//! "blob unknown" to manifest `PUT`s, one turns cross-repository mounts
//! into plain upload sessions (a registry that refuses mounts), one counts
//! blob and manifest downloads, one records every request line. Relays
//! that break blob downloads are in `blob_relay.rs`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A TCP relay on 127.0.0.1 to `upstream` that counts `PUT` requests in
/// flight: one is from its first bytes (`wasi:http` opens a connection per
/// request) until the first bytes of its answer. Answers to `PUT`s are
/// held back until `hold_until` of them have been in flight at once (or,
/// once, 30 s passed), so a client that really sends that many at once is seen
/// doing so, however fast the server is.
pub struct PutCounter {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    state: Arc<(Mutex<PutsInFlight>, Condvar)>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct PutsInFlight {
    now: usize,
    peak: usize,
    released: bool,
}

impl PutCounter {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str, hold_until: usize) -> PutCounter {
        let state: Arc<(Mutex<PutsInFlight>, Condvar)> = Arc::default();
        let shared = state.clone();
        let (port, stop) = serve(upstream, move |client, server| {
            relay(client, server, &shared, hold_until)
        });
        PutCounter { port, state, stop }
    }

    /// The most `PUT`s seen in flight at once.
    pub fn peak(&self) -> usize {
        self.state.0.lock().unwrap().peak
    }
}

impl Drop for PutCounter {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
    }
}

/// Listens on a free port of 127.0.0.1 and hands each client, with a new
/// connection to `upstream`, to `handle` on its own thread, until the flag
/// returned is set (see [`stop`]). Returns the port and that flag.
pub(crate) fn serve(
    upstream: &str,
    handle: impl Fn(TcpStream, TcpStream) + Clone + Send + 'static,
) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = upstream.to_owned();
    let stopped = stop.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                continue;
            };
            let handle = handle.clone();
            std::thread::spawn(move || handle(client, server));
        }
    });
    (port, stop)
}

/// Stops the relay listening on `port` whose flag is `flag`.
pub(crate) fn stop(flag: &AtomicBool, port: u16) {
    flag.store(true, Ordering::SeqCst);
    // Wakes the accepting thread so that it sees the flag.
    let _ = TcpStream::connect(("127.0.0.1", port));
}

/// A TCP relay on 127.0.0.1 to a registry that answers the first `times`
/// manifest `PUT`s itself, `400` with `MANIFEST_BLOB_UNKNOWN`, as
/// distribution does while another push of the same blob rewrites the
/// repository's link to it; everything else goes through.
pub struct BlobUnknown {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl BlobUnknown {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str, times: usize) -> BlobUnknown {
        let refused = Arc::new(AtomicUsize::new(0));
        let count = refused.clone();
        let (port, stop) = serve(upstream, move |client, server| {
            refuse_or_forward(client, server, &count, times)
        });
        BlobUnknown {
            port,
            refused,
            stop,
        }
    }

    /// How many manifest `PUT`s it answered itself.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for BlobUnknown {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
    }
}

/// Answers a manifest `PUT` with `MANIFEST_BLOB_UNKNOWN` while fewer than
/// `times` were; forwards anything else both ways.
fn refuse_or_forward(
    mut client: TcpStream,
    mut server: TcpStream,
    count: &AtomicUsize,
    times: usize,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // The head of the request, and as much of its body as came with it.
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
    let manifest_put = head.starts_with("put ")
        && head
            .lines()
            .next()
            .is_some_and(|l| l.contains("/manifests/"));
    if manifest_put && count.fetch_add(1, Ordering::SeqCst) < times {
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while request.len() < head_end + length {
            match client.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
        let _ = write!(
            client,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if manifest_put {
        count.fetch_sub(1, Ordering::SeqCst);
    }
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if server.write_all(&request).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}

/// Forwards one connection both ways, counting it if it is a `PUT`.
fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    state: &(Mutex<PutsInFlight>, Condvar),
    hold_until: usize,
) {
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let mut first = [0u8; 4096];
    let Ok(n) = client.read(&mut first) else {
        return;
    };
    let is_put = first[..n].starts_with(b"PUT ");
    if is_put {
        let mut puts = state.0.lock().unwrap();
        puts.now += 1;
        puts.peak = puts.peak.max(puts.now);
        if puts.peak >= hold_until {
            puts.released = true;
            state.1.notify_all();
        }
    }
    if server.write_all(&first[..n]).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    let mut answer = [0u8; 4096];
    let n = server_in.read(&mut answer).unwrap_or(0);
    if is_put {
        let puts = state.0.lock().unwrap();
        let (mut puts, _) = state
            .1
            .wait_timeout_while(puts, std::time::Duration::from_secs(30), |p| !p.released)
            .unwrap();
        // Held once at most: after a timeout, answers pass.
        puts.released = true;
        puts.now -= 1;
    }
    if client_out.write_all(&answer[..n]).is_ok() {
        let _ = std::io::copy(&mut server_in, &mut client_out);
    }
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}

/// A TCP relay on 127.0.0.1 to a registry that drops the query of every
/// `POST …/blobs/uploads/?mount=…`, so the registry opens an upload session
/// (`202`) instead of mounting: a registry that refuses mounts.
pub struct NoMount {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl NoMount {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> NoMount {
        let refused = Arc::new(AtomicUsize::new(0));
        let count = refused.clone();
        let (port, stop) = serve(upstream, move |client, server| {
            unmount(client, server, &count)
        });
        NoMount {
            port,
            refused,
            stop,
        }
    }

    /// How many mounts it turned into upload sessions.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for NoMount {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
    }
}

/// Forwards one connection, without the query of a mount request.
fn unmount(mut client: TcpStream, mut server: TcpStream, count: &AtomicUsize) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let line_end = loop {
        if let Some(at) = request.windows(2).position(|w| w == b"\r\n") {
            break at;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let line = String::from_utf8_lossy(&request[..line_end]).to_string();
    if line.starts_with("POST ") && line.contains("/blobs/uploads/?mount=") {
        count.fetch_add(1, Ordering::SeqCst);
        let mut parts = line.splitn(3, ' ');
        let (method, target, version) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let path = target.split('?').next().unwrap_or_default();
        let rest = request.split_off(line_end);
        request = format!("{method} {path} {version}").into_bytes();
        request.extend_from_slice(&rest);
    }
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if server.write_all(&request).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}

/// A TCP relay on 127.0.0.1 to a registry that counts `GET`s of blobs and
/// of manifests.
pub struct BlobGets {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    counts: Arc<(AtomicUsize, AtomicUsize)>,
    stop: Arc<AtomicBool>,
}

impl BlobGets {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> BlobGets {
        let counts: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let shared = counts.clone();
        let (port, stop) = serve(upstream, move |client, server| {
            count_gets(client, server, &shared)
        });
        BlobGets { port, counts, stop }
    }

    /// `GET /v2/…/blobs/…` requests seen.
    pub fn blob_gets(&self) -> usize {
        self.counts.0.load(Ordering::SeqCst)
    }

    /// `GET /v2/…/manifests/…` requests seen.
    pub fn manifest_gets(&self) -> usize {
        self.counts.1.load(Ordering::SeqCst)
    }
}

impl Drop for BlobGets {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
    }
}

/// Forwards one connection both ways, counting the `GET` it starts with.
fn count_gets(mut client: TcpStream, mut server: TcpStream, counts: &(AtomicUsize, AtomicUsize)) {
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let mut first = [0u8; 4096];
    let Ok(n) = client.read(&mut first) else {
        return;
    };
    let line = String::from_utf8_lossy(&first[..n]);
    let line = line.lines().next().unwrap_or_default();
    if line.starts_with("GET ") && line.contains("/blobs/") {
        counts.0.fetch_add(1, Ordering::SeqCst);
    }
    if line.starts_with("GET ") && line.contains("/manifests/") {
        counts.1.fetch_add(1, Ordering::SeqCst);
    }
    if server.write_all(&first[..n]).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}

/// A TCP relay on 127.0.0.1 to a registry that records the request line
/// (`METHOD TARGET HTTP/1.1`) each connection starts with (`wasi:http`
/// and the host's pulls open a connection per request).
pub struct Requests {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Requests {
    /// Starts relaying to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Requests {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let shared = lines.clone();
        let (port, stop) = serve(upstream, move |client, server| {
            record(client, server, &shared)
        });
        Requests { port, lines, stop }
    }

    /// The request lines seen so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
    }
}

/// Forwards one connection both ways, recording its request line.
fn record(mut client: TcpStream, mut server: TcpStream, lines: &Mutex<Vec<String>>) {
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let mut first = [0u8; 4096];
    let Ok(n) = client.read(&mut first) else {
        return;
    };
    let text = String::from_utf8_lossy(&first[..n]);
    if let Some(line) = text.lines().next().filter(|l| !l.is_empty()) {
        lines.lock().unwrap().push(line.to_owned());
    }
    if server.write_all(&first[..n]).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Write);
    let _ = upload.join();
}
