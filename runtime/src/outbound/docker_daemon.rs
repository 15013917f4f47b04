//! The host's connection to the docker daemon's Engine API, over its unix
//! socket (`DOCKER_HOST=unix://PATH`, else `/var/run/docker.sock`): HTTP/1.1
//! by `hyper`, one connection per request. A component never gets the
//! socket. A `tcp://` host is refused: the Engine API over TCP without TLS
//! is root on the daemon's machine for anyone on the network.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use wasmtime_wasi_http::io::TokioIo;

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

/// A docker daemon reached through its unix socket.
#[derive(Clone, Debug)]
pub struct Daemon {
    socket: PathBuf,
    host: String,
}

impl Daemon {
    /// The daemon `DOCKER_HOST` names, else `unix:///var/run/docker.sock`.
    pub fn from_env() -> Result<Daemon, DaemonError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        Daemon::at(&host)
    }

    /// The daemon at `host` (`unix://PATH`).
    pub fn at(host: &str) -> Result<Daemon, DaemonError> {
        let refuse = |problem| DaemonError::Host {
            host: host.to_owned(),
            problem,
        };
        match host.split_once("://") {
            Some(("unix", path)) if !path.is_empty() => Ok(Daemon {
                socket: PathBuf::from(path),
                host: host.to_owned(),
            }),
            Some(("tcp" | "http" | "https", _)) => Err(refuse(
                "a TCP docker host is refused (the Engine API over TCP gives root on the daemon's machine); use unix://PATH",
            )),
            _ => Err(refuse("not a unix://PATH docker host")),
        }
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
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| DaemonError::Connect {
                host: self.host.clone(),
                source,
            })?;
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
