//! A TCP relay on 127.0.0.1 in front of a real HTTP server that misbehaves
//! on purpose: it answers the first requests `503 Service Unavailable`
//! itself, or drops their connections unanswered, or rewrites the
//! `Accept-Encoding` header of every request as Google Cloud Storage's
//! front end does (appending `gzip(gfe)`). It records the
//! `Accept-Encoding` of every request. One connection is one request
//! (`wasi:http` opens a connection per request). Its faults can be kept
//! for requests with a body over a size (blob uploads).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    faults: Arc<AtomicUsize>,
    encodings: Arc<Mutex<Vec<Option<String>>>>,
    stop: Arc<AtomicBool>,
}

impl Flaky {
    /// Starts relaying to `upstream` (`host:port`) with `fault`.
    pub fn start(upstream: &str, fault: Fault) -> Flaky {
        Flaky::start_over(upstream, fault, None)
    }

    /// As [`Flaky::start`], the fault kept for requests whose
    /// `Content-Length` is over `body_over` bytes, when given.
    pub fn start_over(upstream: &str, fault: Fault, body_over: Option<u64>) -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Flaky {
            port,
            faults: Arc::default(),
            encodings: Arc::default(),
            stop: Arc::default(),
        };
        let (faults, encodings, stop) = (
            relay.faults.clone(),
            relay.encodings.clone(),
            relay.stop.clone(),
        );
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (faults, encodings, upstream) =
                    (faults.clone(), encodings.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let fault = (fault, body_over);
                    handle(client, &upstream, fault, &faults, &encodings);
                });
            }
        });
        relay
    }

    /// How many requests it answered `503` or dropped.
    pub fn faults(&self) -> usize {
        self.faults.load(Ordering::SeqCst)
    }

    /// The `Accept-Encoding` of each request, as it came (`None`: absent).
    pub fn encodings(&self) -> Vec<Option<String>> {
        self.encodings.lock().unwrap().clone()
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One connection: the request head read, the fault applied, or the
/// request forwarded and the answer relayed.
fn handle(
    mut client: TcpStream,
    upstream: &str,
    (fault, body_over): (Fault, Option<u64>),
    faults: &AtomicUsize,
    encodings: &Mutex<Vec<Option<String>>>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let encoding = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("accept-encoding")
            .then(|| value.trim().to_owned())
    });
    encodings.lock().unwrap().push(encoding);
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<u64>().ok())?
    });
    let targeted = body_over.is_none_or(|over| length.is_some_and(|n| n > over));
    let take_fault = |n: usize| {
        targeted
            && faults
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                    (f < n).then_some(f + 1)
                })
                .is_ok()
    };
    match fault {
        Fault::Drop(n) if take_fault(n) => {
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
        Fault::Unavailable(n) if take_fault(n) => {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(std::net::Shutdown::Write);
            // The rest of the request, if any, is read and dropped.
            let _ = std::io::copy(&mut client, &mut std::io::sink());
            return;
        }
        Fault::GfeEncoding => {
            let rewritten: String = head
                .split_inclusive("\r\n")
                .map(|line| match line.split_once(':') {
                    Some((name, value)) if name.eq_ignore_ascii_case("accept-encoding") => {
                        format!("{name}: {}, gzip(gfe)\r\n", value.trim())
                    }
                    _ => line.to_owned(),
                })
                .collect();
            request.splice(..head_end, rewritten.into_bytes());
        }
        _ => {}
    }
    forward(client, upstream, &request);
}

/// Sends `request` (what was read so far) to `upstream`, then relays both
/// ways until either side closes.
fn forward(mut client: TcpStream, upstream: &str, request: &[u8]) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if server.write_all(request).is_err() {
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
