//! The core of every test relay: a TCP relay on 127.0.0.1 in front of a
//! real server that reads each connection's request head, asks its
//! [`Hook`] what to do with it (forward it, maybe changed; answer it
//! itself; drop the connection) and, when forwarded, relays the rest of
//! the request upstream while the hook relays the answer back. One
//! connection is one request: `wasi:http` and the host's pulls open a
//! connection per request.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A request as the relay read it.
pub struct Request {
    /// Its head, through the blank line (`\r\n` line ends).
    pub head: String,
    /// The bytes after the head that came with it (part of the body).
    pub body: Vec<u8>,
}

impl Request {
    /// The request line (`METHOD TARGET HTTP/1.1`).
    pub fn line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The method.
    pub fn method(&self) -> &str {
        self.line().split(' ').next().unwrap_or_default()
    }

    /// The request target (path and query).
    pub fn target(&self) -> &str {
        self.line().split(' ').nth(1).unwrap_or_default()
    }

    /// A `GET` whose target contains `part` (e.g. `/blobs/`).
    pub fn is_get_of(&self, part: &str) -> bool {
        self.method() == "GET" && self.target().contains(part)
    }

    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, value) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Its `Content-Length`, if it has a valid one.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.parse().ok()
    }

    /// Replaces the request line.
    pub fn set_line(&mut self, line: &str) {
        let rest = self.head.find("\r\n").map_or("", |at| &self.head[at..]);
        self.head = format!("{line}{rest}");
    }

    /// Rewrites the value of header `name` (any case) with `edit`; `None`
    /// removes the header.
    pub fn edit_header(&mut self, name: &str, edit: impl Fn(&str) -> Option<String>) {
        self.head = self
            .head
            .split_inclusive("\r\n")
            .filter_map(|line| match line.split_once(':') {
                Some((n, value)) if n.eq_ignore_ascii_case(name) => {
                    edit(value.trim()).map(|v| format!("{n}: {v}\r\n"))
                }
                _ => Some(line.to_owned()),
            })
            .collect();
    }
}

/// What a relay does with a request.
pub enum Verdict {
    /// Sends it upstream (as the hook left it) and relays the answer
    /// through [`Hook::answer`].
    Forward,
    /// Answers it with these bytes (a whole HTTP answer) instead, closes
    /// its side and reads the rest of the request to its end.
    Answer(String),
    /// Closes the connection unanswered.
    Drop,
}

/// What one relay does to requests and answers.
pub trait Hook: Send + Sync + 'static {
    /// Looks at (and may change) a request whose head was read.
    fn request(&self, _request: &mut Request) -> Verdict {
        Verdict::Forward
    }

    /// Relays the answer to `request` from `server` to `client`; all of it
    /// unless the hook does otherwise (holds it back, cuts it short: then
    /// it shuts the connections down itself).
    fn answer(&self, _request: &Request, server: &mut TcpStream, client: &mut TcpStream) {
        let _ = std::io::copy(server, client);
    }
}

/// A running relay; it stops when dropped.
pub struct Relay {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Starts relaying to `upstream` (`host:port`) through `hook`, each
    /// connection on its own thread.
    pub fn start(upstream: &str, hook: Arc<dyn Hook>) -> Relay {
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
                let Ok(client) = client else { continue };
                let (hook, upstream) = (hook.clone(), upstream.clone());
                std::thread::spawn(move || handle(client, &upstream, &*hook));
            }
        });
        Relay { port, stop }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads a request's head (through the blank line) from `client`.
fn read_head(client: &mut TcpStream) -> Option<Request> {
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = read.split_off(at + 4);
            let head = String::from_utf8_lossy(&read).into_owned();
            return Some(Request { head, body });
        }
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
    }
}

/// One connection: its request read, then what the hook says done.
fn handle(mut client: TcpStream, upstream: &str, hook: &dyn Hook) {
    let Some(mut request) = read_head(&mut client) else {
        return;
    };
    match hook.request(&mut request) {
        Verdict::Drop => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Verdict::Answer(answer) => {
            let _ = client.write_all(answer.as_bytes());
            let _ = client.shutdown(Shutdown::Write);
            // The rest of the request, if any, is read and dropped.
            let _ = std::io::copy(&mut client, &mut std::io::sink());
        }
        Verdict::Forward => forward(client, upstream, &request, hook),
    }
}

/// Sends `request` upstream, then relays the rest of it while the hook
/// relays the answer; both ways closed after.
fn forward(mut client: TcpStream, upstream: &str, request: &Request, hook: &dyn Hook) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut client_out), Ok(mut server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    if server.write_all(request.head.as_bytes()).is_err()
        || server.write_all(&request.body).is_err()
    {
        return;
    }
    let upload = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client, &mut server);
        let _ = server.shutdown(Shutdown::Write);
    });
    hook.answer(request, &mut server_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Write);
    let _ = upload.join();
}

/// A whole answer with `status` (`503 Service Unavailable`), a body of
/// `content_type` and `Connection: close`.
pub fn answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
