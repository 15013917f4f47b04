//! TCP relays on 127.0.0.1 to a registry that break blob downloads the way
//! networks and registries do: [`CutBlobs`] cuts blob answers after some
//! bytes (a dropped connection), optionally hiding the registry's `Range`
//! support; [`Redirects`] answers blob (or manifest) `GET`s with a `307` to
//! another address, as registries send blobs to S3 or a CDN, and records
//! the requests that reach that address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::relay::{serve, stop};

/// Reads a request's head (through the blank line) from `client`: the
/// head and any bytes after it that came with it.
fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = request.split_off(at + 4);
            return Some((String::from_utf8_lossy(&request).into_owned(), rest));
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `head` and `rest` to `server`, then relays the rest of the
/// request, and `answer` relays the answer; both ways closed after.
fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    head: &str,
    rest: &[u8],
    answer: impl FnOnce(&mut TcpStream, &mut TcpStream),
) {
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if server.write_all(head.as_bytes()).is_err() || server.write_all(rest).is_err() {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(std::net::Shutdown::Write);
    });
    answer(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Both);
    let _ = server_in.shutdown(std::net::Shutdown::Both);
    let _ = upload.join();
}

fn is_blob_get(head: &str) -> bool {
    let line = head.lines().next().unwrap_or_default();
    line.starts_with("GET ") && line.contains("/blobs/")
}

/// Cuts the first `cuts` blob answers longer than `after` bytes after
/// that many bytes.
pub struct CutBlobs {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    counts: Arc<CutCounts>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct CutCounts {
    cut: AtomicUsize,
    ranged: AtomicUsize,
    blob_gets: AtomicUsize,
}

impl CutBlobs {
    /// Starts relaying to `upstream` (`host:port`); `cuts` answers are cut
    /// (`usize::MAX`: every one); without `ranges`, the `Range` header of
    /// requests is dropped, so the registry answers whole blobs.
    pub fn start(upstream: &str, cuts: usize, after: u64, ranges: bool) -> CutBlobs {
        let counts: Arc<CutCounts> = Arc::default();
        let shared = counts.clone();
        let (port, stop) = serve(upstream, move |mut client, server| {
            let Some((mut head, rest)) = read_head(&mut client) else {
                return;
            };
            let blob = is_blob_get(&head);
            if blob {
                shared.blob_gets.fetch_add(1, Ordering::SeqCst);
            }
            if head.to_ascii_lowercase().contains("\r\nrange:") {
                shared.ranged.fetch_add(1, Ordering::SeqCst);
                if !ranges {
                    head = head
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("range:"))
                        .collect::<Vec<_>>()
                        .join("\r\n");
                }
            }
            let counts = shared.clone();
            forward(client, server, &head, &rest, move |from, to| {
                if !blob || counts.cut.load(Ordering::SeqCst) >= cuts {
                    let _ = std::io::copy(from, to);
                    return;
                }
                let sent = std::io::copy(&mut (&mut *from).take(after), to).unwrap_or(0);
                if sent == after {
                    counts.cut.fetch_add(1, Ordering::SeqCst);
                } else {
                    let _ = std::io::copy(from, to);
                }
            });
        });
        CutBlobs { port, counts, stop }
    }

    /// Blob answers cut.
    pub fn cut(&self) -> usize {
        self.counts.cut.load(Ordering::SeqCst)
    }

    /// Requests that carried a `Range` header.
    pub fn ranged(&self) -> usize {
        self.counts.ranged.load(Ordering::SeqCst)
    }

    /// `GET`s of blobs.
    pub fn blob_gets(&self) -> usize {
        self.counts.blob_gets.load(Ordering::SeqCst)
    }
}

impl Drop for CutBlobs {
    fn drop(&mut self) {
        stop(&self.stop, self.port);
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
    seen: Arc<Mutex<Vec<String>>>,
    stops: [Arc<AtomicBool>; 2],
}

impl Redirects {
    /// Starts both relays.
    pub fn start(upstream: &str, elsewhere: &str, manifests: bool) -> Redirects {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let (elsewhere_port, stop_elsewhere) = serve(elsewhere, move |mut client, server| {
            let Some((head, rest)) = read_head(&mut client) else {
                return;
            };
            record.lock().unwrap().push(head.clone());
            forward(client, server, &head, &rest, |from, to| {
                let _ = std::io::copy(from, to);
            });
        });
        let (port, stop_front) = serve(upstream, move |mut client, server| {
            let Some((head, rest)) = read_head(&mut client) else {
                return;
            };
            let line = head.lines().next().unwrap_or_default().to_owned();
            let manifest = line.starts_with("GET ") && line.contains("/manifests/");
            if is_blob_get(&head) || (manifests && manifest) {
                let path = line.split(' ').nth(1).unwrap_or("/");
                let _ = write!(
                    client,
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{elsewhere_port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return;
            }
            forward(client, server, &head, &rest, |from, to| {
                let _ = std::io::copy(from, to);
            });
        });
        Redirects {
            port,
            elsewhere_port,
            seen,
            stops: [stop_front, stop_elsewhere],
        }
    }

    /// The request heads the second relay received.
    pub fn seen_elsewhere(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Redirects {
    fn drop(&mut self) {
        stop(&self.stops[0], self.port);
        stop(&self.stops[1], self.elsewhere_port);
    }
}
