//! `docker load` through the Engine API: a file streamed as the body of
//! `POST /images/load` (never read whole into memory), the daemon's
//! JSON-lines answer read back (`Loaded image: NAME`, `Loaded image ID:
//! sha256:…`, or an `errorDetail`), and the loaded image's ID asked of the
//! daemon (`GET /images/NAME/json`) when the answer names it by tag.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper::body::{Body, Frame, SizeHint};
use outport_oci::{Reference, Sha256Digest};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::streamed::{self, Chunk};
use super::{ANSWER_LIMIT, Daemon, DaemonError};
use crate::sandbox::text::one_line;

/// Bytes read from the file per body frame.
const CHUNK: usize = 1 << 20;

/// What the daemon loaded: one image, by ID, and the names it tagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The image ID the daemon gave it.
    pub id: Sha256Digest,
    /// The names the daemon tagged it with (docker's short form), in its
    /// order.
    pub names: Vec<String>,
}

/// The daemon's answer to a load, read.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The names it tagged and the IDs it named.
    Loaded {
        names: Vec<Reference>,
        ids: Vec<Sha256Digest>,
    },
    /// Its error message.
    Refused(String),
    /// Not an answer the Engine API gives.
    Invalid(String),
}

impl Daemon {
    /// `docker load`: streams the first `len` bytes of `file` (a docker
    /// tarball) to the daemon and returns the one image it loaded.
    pub async fn load(&self, file: std::fs::File, len: u64) -> Result<Loaded, DaemonError> {
        let body = FileBody {
            file: tokio::fs::File::from_std(file),
            left: len,
            buf: vec![0; CHUNK].into_boxed_slice(),
        };
        self.load_body(body, Some(len)).await
    }

    /// `docker load` of a tarball sent as it comes (chunked): the request
    /// starts at once, its body is what the returned sender sends, ended
    /// by [`Chunk::End`]. When the sender is dropped before that, the
    /// connection is cut mid-body: the daemon sees a tarball cut short and
    /// keeps nothing (see [`streamed`]).
    pub fn load_streamed(&self) -> (mpsc::Sender<Chunk>, JoinHandle<Result<Loaded, DaemonError>>) {
        let (sender, body) = streamed::channel();
        let daemon = self.clone();
        let answer = tokio::spawn(async move { daemon.load_body(body, None).await });
        (sender, answer)
    }

    /// `POST /images/load` with `body` (of `len` bytes when known, else
    /// chunked), the daemon's answer read.
    async fn load_body<B>(&self, body: B, len: Option<u64>) -> Result<Loaded, DaemonError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut request = Daemon::request(hyper::Method::POST, "/images/load?quiet=1")
            .header(hyper::header::CONTENT_TYPE, "application/x-tar");
        if let Some(len) = len {
            request = request.header(hyper::header::CONTENT_LENGTH, len);
        }
        let request = request
            .body(body)
            .map_err(|e| self.answer_error(format!("cannot make the request: {e}")))?;
        let body = self.ok_body(request, "its answer to the load").await?;
        let (names, ids) = match read_answer(&body) {
            Answer::Loaded { names, ids } => (names, ids),
            Answer::Refused(message) => {
                return Err(DaemonError::LoadRefused {
                    host: self.host.clone(),
                    message,
                });
            }
            Answer::Invalid(problem) => return Err(self.answer_error(problem)),
        };
        let mut ids = ids;
        for name in &names {
            ids.push(self.image_id(&name.familiar()).await?);
        }
        ids.sort_unstable();
        ids.dedup();
        match ids.as_slice() {
            [id] => Ok(Loaded {
                id: id.clone(),
                names: names.iter().map(Reference::familiar).collect(),
            }),
            [] => Err(self.answer_error("its answer to the load names no image".to_owned())),
            _ => Err(self.answer_error(format!("the tarball held {} images, not one", ids.len()))),
        }
    }

    /// The ID of image `name` (`docker image inspect`).
    async fn image_id(&self, name: &str) -> Result<Sha256Digest, DaemonError> {
        let request = Daemon::request(hyper::Method::GET, &format!("/images/{name}/json"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.answer_error(format!("cannot make the request: {e}")))?;
        let body = self.ok_body(request, &format!("image {name}")).await?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("Id").and_then(|id| id.as_str()).map(str::to_owned))
            .and_then(|id| Sha256Digest::parse(&id).ok())
            .ok_or_else(|| self.answer_error(format!("image {name} has no sha256 Id")))
    }

    /// Sends `request` and reads the whole of a `200 OK` answer (at most
    /// `ANSWER_LIMIT` bytes); any other status is the daemon's refusal.
    async fn ok_body<B>(&self, request: hyper::Request<B>, what: &str) -> Result<Bytes, DaemonError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let answer = self.send(request).await?;
        if answer.status() != StatusCode::OK {
            return Err(self.refused(answer).await);
        }
        Ok(Limited::new(answer.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|e| self.answer_error(format!("reading {what}: {e}")))?
            .to_bytes())
    }

    fn answer_error(&self, problem: String) -> DaemonError {
        DaemonError::Answer {
            host: self.host.clone(),
            problem: one_line(&problem).into_owned(),
        }
    }
}

/// Reads the daemon's JSON lines: `{"stream": "Loaded image: NAME\n"}`,
/// `{"stream": "Loaded image ID: sha256:…\n"}`, other stream text (a tag
/// moved away from an older image), or `{"errorDetail": {"message": …}}`.
fn read_answer(body: &[u8]) -> Answer {
    let mut names = Vec::new();
    let mut ids = Vec::new();
    let text = String::from_utf8_lossy(body);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            return Answer::Invalid(format!(
                "its answer to the load is not JSON lines: {}",
                one_line(line)
            ));
        };
        let error = value
            .pointer("/errorDetail/message")
            .or_else(|| value.get("error"))
            .and_then(|m| m.as_str());
        if let Some(message) = error {
            return Answer::Refused(one_line(message.trim()).into_owned());
        }
        let stream = value.get("stream").and_then(|s| s.as_str()).unwrap_or("");
        for said in stream.lines() {
            if let Some(id) = said.strip_prefix("Loaded image ID: ") {
                match Sha256Digest::parse(id.trim()) {
                    Ok(id) => ids.push(id),
                    Err(e) => return Answer::Invalid(format!("loaded image ID: {e}")),
                }
            } else if let Some(name) = said.strip_prefix("Loaded image: ") {
                match Reference::parse(name.trim()) {
                    Ok(name) => names.push(name),
                    Err(e) => return Answer::Invalid(format!("loaded image name: {e}")),
                }
            }
        }
    }
    Answer::Loaded { names, ids }
}

/// A request body streaming the first `left` bytes of a file.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Box<[u8]>,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left).map_or(this.buf.len(), |l| l.min(this.buf.len()));
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Some(Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "the output file shrank"),
            ))),
            Poll::Ready(Ok(())) => {
                let data = Bytes::copy_from_slice(read.filled());
                this.left -= data.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn tagged_and_untagged_answers() {
        let tagged = b"{\"stream\":\"Loaded image: app:1\\n\"}\r\n{\"stream\":\"Loaded image: example.com/x/y:2\\n\"}\r\n";
        let Answer::Loaded { names, ids } = read_answer(tagged) else {
            panic!("not loaded");
        };
        let names: Vec<String> = names.iter().map(Reference::familiar).collect();
        assert_eq!(names, ["app:1", "example.com/x/y:2"]);
        assert!(ids.is_empty());
        let untagged = format!("{{\"stream\":\"Loaded image ID: {}\\n\"}}\n", id('a'));
        assert_eq!(
            read_answer(untagged.as_bytes()),
            Answer::Loaded {
                names: vec![],
                ids: vec![Sha256Digest::parse(&id('a')).unwrap()]
            }
        );
        // A tag moved from an older image is said in passing.
        let moved = b"{\"stream\":\"The image app:1 already exists, renaming the old one with ID x to empty string\\n\"}\n{\"stream\":\"Loaded image: app:1\\n\"}\n";
        assert!(matches!(read_answer(moved), Answer::Loaded { names, .. } if names.len() == 1));
    }

    #[test]
    fn errors_are_one_line() {
        let refused = b"{\"errorDetail\":{\"message\":\"unexpected EOF\\nsecond line\"},\"error\":\"unexpected EOF\"}\n";
        assert_eq!(
            read_answer(refused),
            Answer::Refused("unexpected EOF\\nsecond line".to_owned())
        );
        assert!(matches!(read_answer(b"<html>\n"), Answer::Invalid(_)));
        assert!(matches!(
            read_answer(b"{\"stream\":\"Loaded image ID: md5:1\\n\"}"),
            Answer::Invalid(_)
        ));
    }
}
