//! The host's connection to the docker daemon's Engine API, over its unix
//! socket (`DOCKER_HOST=unix://PATH`, else `/var/run/docker.sock`): HTTP/1.1
//! by `hyper`, one connection per request. A component never gets the
//! socket. A `tcp://` host is refused unless `OUTPORT_DOCKER_ALLOW_TCP=1`
//! asks for it: the Engine API over TCP without TLS is root on the
//! daemon's machine for anyone who can reach the port (TLS is not
//! supported). Loading an image (`POST /images/load`) is in [`load`]; the
//! body of a load sent while the tarball is still being written, in
//! [`streamed`].

pub mod load;
pub mod streamed;

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi_http::io::TokioIo;

/// The environment variable that lets a `tcp://` `DOCKER_HOST` be used.
pub const ALLOW_TCP_ENV: &str = "OUTPORT_DOCKER_ALLOW_TCP";

/// Largest error or load answer read from the daemon (1 MiB).
const ANSWER_LIMIT: usize = 1 << 20;

/// Why the daemon could not be asked, or what it refused. One line, naming
/// the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `DOCKER_HOST` names what is not a unix socket.
    #[error("docker daemon at {host}: {problem}")]
    Host {
        /// `DOCKER_HOST`.
        host: String,
        /// Why it is refused.
        problem: &'static str,
    },
    /// The socket does not answer (no daemon, no permission).
    #[error("docker daemon at {host}: cannot connect: {source}")]
    Connect {
        /// The daemon.
        host: String,
        /// The error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("docker daemon at {host}: {source}")]
    Http {
        /// The daemon.
        host: String,
        /// The error.
        source: hyper::Error,
    },
    /// Writing what the daemon sent failed.
    #[error("docker daemon at {host}: writing its answer: {source}")]
    Write {
        /// The daemon.
        host: String,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon refused an image sent to it (`POST /images/load`).
    #[error("docker daemon at {host} refused the image: {message}")]
    LoadRefused {
        /// The daemon.
        host: String,
        /// The daemon's message, one line.
        message: String,
    },
    /// The daemon's answer is not one the Engine API gives.
    #[error("docker daemon at {host}: {problem}")]
    Answer {
        /// The daemon.
        host: String,
        /// What is wrong with it, one line.
        problem: String,
    },
    /// The daemon answered with an error.
    #[error("docker daemon at {host}: {message} (HTTP {status})")]
    Refused {
        /// The daemon.
        host: String,
        /// The HTTP status.
        status: u16,
        /// The daemon's message, one line.
        message: String,
    },
}

/// Where the daemon listens.
#[derive(Clone, Debug)]
enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// `HOST:PORT`, plain HTTP (only when asked for).
    Tcp(String),
}

/// A docker daemon reached through its unix socket (or, when asked for,
/// plain TCP).
#[derive(Clone, Debug)]
pub struct Daemon {
    endpoint: Endpoint,
    host: String,
}

impl Daemon {
    /// The daemon `DOCKER_HOST` names, else `unix:///var/run/docker.sock`;
    /// a TCP host only with `OUTPORT_DOCKER_ALLOW_TCP=1`, and never with
    /// `DOCKER_TLS_VERIFY` set (TLS is not supported).
    pub fn from_env() -> Result<Daemon, DaemonError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let allow_tcp = std::env::var(ALLOW_TCP_ENV).is_ok_and(|v| v == "1");
        let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        let daemon = Daemon::at(&host, allow_tcp)?;
        if tls && matches!(daemon.endpoint, Endpoint::Tcp(_)) {
            return Err(DaemonError::Host {
                host,
                problem: "DOCKER_TLS_VERIFY is set, and TLS to the docker daemon is not supported",
            });
        }
        Ok(daemon)
    }

    /// The daemon at `host`: `unix://PATH`, or `tcp://HOST:PORT` when
    /// `allow_tcp`.
    pub fn at(host: &str, allow_tcp: bool) -> Result<Daemon, DaemonError> {
        let refuse = |problem| DaemonError::Host {
            host: host.to_owned(),
            problem,
        };
        let endpoint = match host.split_once("://") {
            Some(("unix", path)) if !path.is_empty() => Endpoint::Unix(PathBuf::from(path)),
            Some(("tcp" | "http", _)) if !allow_tcp => {
                return Err(refuse(
                    "a TCP docker host is refused (the Engine API over TCP gives root on the daemon's machine); use unix://PATH, or set OUTPORT_DOCKER_ALLOW_TCP=1",
                ));
            }
            Some(("tcp" | "http", address)) => {
                let address = address.trim_end_matches('/');
                if address.is_empty() || address.contains('/') {
                    return Err(refuse("not a tcp://HOST:PORT docker host"));
                }
                let address = if address.contains(':') {
                    address.to_owned()
                } else {
                    format!("{address}:2375")
                };
                Endpoint::Tcp(address)
            }
            Some(("https", _)) => {
                return Err(refuse("TLS to the docker daemon is not supported"));
            }
            _ => return Err(refuse("not a unix://PATH docker host")),
        };
        Ok(Daemon {
            endpoint,
            host: host.to_owned(),
        })
    }

    /// `DOCKER_HOST` as given, naming the daemon in messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `request` on a new connection and returns the answer's head
    /// (its body streams).
    pub(crate) async fn send<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Incoming>, DaemonError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let connect = |source| DaemonError::Connect {
            host: self.host.clone(),
            source,
        };
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect)?;
                self.exchange(stream, request).await
            }
            Endpoint::Tcp(address) => {
                let stream = tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .map_err(connect)?;
                self.exchange(stream, request).await
            }
        }
    }

    /// One HTTP/1.1 exchange on `stream`.
    async fn exchange<S, B>(
        &self,
        stream: S,
        request: Request<B>,
    ) -> Result<Response<Incoming>, DaemonError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let http = |source| DaemonError::Http {
            host: self.host.clone(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(connection);
        sender.send_request(request).await.map_err(http)
    }

    /// A request to `path` of the Engine API.
    pub(crate) fn request(method: hyper::Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://docker{path}"))
            .header(hyper::header::HOST, "docker")
    }

    /// `docker save NAME`: streams the daemon's save of `name` (a
    /// reference or an image ID) into `to`.
    pub async fn save(&self, name: &str, to: &mut impl Write) -> Result<(), DaemonError> {
        let request = Daemon::request(hyper::Method::GET, &format!("/images/get?names={name}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| DaemonError::Host {
                host: format!("{} ({e})", self.host),
                problem: "cannot make the request",
            })?;
        let mut answer = self.send(request).await?;
        if answer.status() != StatusCode::OK {
            return Err(self.refused(answer).await);
        }
        let body = answer.body_mut();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| DaemonError::Http {
                host: self.host.clone(),
                source,
            })?;
            if let Some(data) = frame.data_ref() {
                to.write_all(data).map_err(|source| DaemonError::Write {
                    host: self.host.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// `GET /_ping`: whether the daemon answers at all.
    pub async fn ping(&self) -> Result<(), DaemonError> {
        let request = Daemon::request(hyper::Method::GET, "/_ping")
            .body(Empty::<Bytes>::new())
            .map_err(|e| DaemonError::Host {
                host: format!("{} ({e})", self.host),
                problem: "cannot make the request",
            })?;
        let answer = self.send(request).await?;
        match answer.status() {
            StatusCode::OK => Ok(()),
            _ => Err(self.refused(answer).await),
        }
    }

    /// The error for an answer that is not a success: the daemon's
    /// `{"message": …}`, one line.
    pub(crate) async fn refused(&self, answer: Response<Incoming>) -> DaemonError {
        let status = answer.status().as_u16();
        let body = http_body_util::Limited::new(answer.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        DaemonError::Refused {
            host: self.host.clone(),
            status,
            message: crate::sandbox::text::one_line(message.trim()).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_always_tcp_only_when_asked_tls_never() {
        let problem = |host: &str, allow_tcp| match Daemon::at(host, allow_tcp) {
            Err(DaemonError::Host { problem, .. }) => problem,
            other => panic!("{host}: {other:?}"),
        };
        assert!(matches!(
            Daemon::at("unix:///run/d.sock", false).map(|d| d.endpoint),
            Ok(Endpoint::Unix(p)) if p == std::path::Path::new("/run/d.sock")
        ));
        assert!(problem("tcp://127.0.0.1:2375", false).contains("OUTPORT_DOCKER_ALLOW_TCP=1"));
        assert!(matches!(
            Daemon::at("tcp://127.0.0.1:2375/", true).map(|d| d.endpoint),
            Ok(Endpoint::Tcp(a)) if a == "127.0.0.1:2375"
        ));
        assert!(matches!(
            Daemon::at("tcp://docker", true).map(|d| d.endpoint),
            Ok(Endpoint::Tcp(a)) if a == "docker:2375"
        ));
        assert!(problem("https://127.0.0.1:2376", true).contains("TLS"));
        assert!(problem("tcp://h:1/x", true).contains("tcp://HOST:PORT"));
        assert!(problem("ssh://user@host", true).contains("unix://PATH"));
        assert!(problem("unix://", false).contains("unix://PATH"));
    }
}
