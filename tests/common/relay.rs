//! A TCP relay that counts the `PUT` requests a client has in flight at
//! once (uploads several at once: the s3 cache backend, registry pushes).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<(Mutex<PutsInFlight>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (shared, stopped) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let shared = shared.clone();
                std::thread::spawn(move || relay(client, server, &shared, hold_until));
            }
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
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
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
