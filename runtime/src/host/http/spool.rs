//! A streamed request body to the storage endpoint (a blob upload) kept in
//! an unlinked temporary file so that the host can send it again: written
//! as the component streams it, read back from the start for each attempt.
//!
//! The file holds exactly the `content-length` the request declares, is
//! charged against the instance's `scratch` budget while it exists (a
//! body that would not fit is not spooled, and is sent once), is written
//! before the instance's deadline or not at all, and disappears when the
//! request is done with, however it ends (it has no name from the start).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use wasmtime_wasi_http::{Error, WasiBody};

/// Bytes read from the file per chunk sent.
const CHUNK: usize = 256 << 10;
/// Chunks read ahead of the connection.
const AHEAD: usize = 4;

/// Spooled bytes of one instance against its `scratch` budget.
#[derive(Debug)]
pub(super) struct ScratchUse {
    limit: u64,
    used: AtomicU64,
}

/// `bytes` of an instance's scratch budget, given back when dropped.
#[derive(Debug)]
pub(super) struct Charge {
    owner: Arc<ScratchUse>,
    bytes: u64,
}

impl ScratchUse {
    /// No bytes used of `limit`.
    pub(super) fn new(limit: u64) -> Self {
        ScratchUse {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Charges `bytes`, or none when they would pass the limit.
    pub(super) fn charge(self: &Arc<Self>, bytes: u64) -> Option<Charge> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Charge {
            owner: self.clone(),
            bytes,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A whole request body in an unlinked file.
pub(super) struct Spool {
    file: Arc<File>,
    len: u64,
    _charge: Charge,
}

impl Spool {
    /// Reads `body`, which declares `charge.bytes` bytes, into a new
    /// unlinked file, before `deadline`.
    pub(super) async fn fill(
        body: WasiBody,
        charge: Charge,
        deadline: Option<Instant>,
    ) -> Result<Spool, Error> {
        let len = charge.bytes;
        let file = tempfile::tempfile().map_err(|e| internal("creating", &e))?;
        let writer = file.try_clone().map_err(|e| internal("creating", &e))?;
        let copy = copy_exactly(body, tokio::fs::File::from_std(writer), len);
        match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), copy)
                .await
                .map_err(|_| {
                    Error::InternalError(Some(
                        "the instance's time limit passed while the host read the request body"
                            .to_owned(),
                    ))
                })??,
            None => copy.await?,
        }
        Ok(Spool {
            file: Arc::new(file),
            len,
            _charge: charge,
        })
    }

    /// The body again, from its first byte: read from the file as the
    /// connection takes it, a few chunks ahead.
    pub(super) fn body(&self) -> WasiBody {
        let (sender, receiver) = mpsc::channel(AHEAD);
        let (file, len) = (self.file.clone(), self.len);
        tokio::task::spawn_blocking(move || {
            let mut offset = 0u64;
            while offset < len {
                let want = usize::try_from(len - offset).map_or(CHUNK, |left| left.min(CHUNK));
                let mut chunk = vec![0u8; want];
                let read = file
                    .read_exact_at(&mut chunk, offset)
                    .map(|()| Bytes::from(chunk))
                    .map_err(|e| internal("reading", &e));
                let failed = read.is_err();
                if sender.blocking_send(read).is_err() || failed {
                    return;
                }
                offset += want as u64;
            }
        });
        FromFile { receiver }.boxed_unsync()
    }
}

/// Writes the data of `body` to `file`: exactly `len` bytes, or an error.
async fn copy_exactly(
    mut body: WasiBody,
    mut file: tokio::fs::File,
    len: u64,
) -> Result<(), Error> {
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        written += data.len() as u64;
        if written > len {
            return Err(Error::HttpRequestBodySize(Some(written)));
        }
        file.write_all(&data)
            .await
            .map_err(|e| internal("writing", &e))?;
    }
    if written != len {
        return Err(Error::HttpRequestBodySize(Some(written)));
    }
    file.flush().await.map_err(|e| internal("writing", &e))
}

/// A failure of the temporary file, as the request's error.
fn internal(doing: &str, e: &std::io::Error) -> Error {
    Error::InternalError(Some(format!(
        "{doing} the temporary file of a request body: {e}"
    )))
}

/// The chunks the reading task sends.
struct FromFile {
    receiver: mpsc::Receiver<Result<Bytes, Error>>,
}

impl Body for FromFile {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(|read| read.map(Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn body(bytes: &[u8]) -> WasiBody {
        Full::new(Bytes::copy_from_slice(bytes))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    #[test]
    fn scratch_charges_stay_within_the_limit_until_dropped() {
        let scratch = Arc::new(ScratchUse::new(10));
        let six = scratch.charge(6).unwrap();
        assert!(scratch.charge(5).is_none());
        let four = scratch.charge(4).unwrap();
        drop(six);
        assert!(scratch.charge(6).is_some());
        drop(four);
        assert!(scratch.charge(11).is_none());
        assert_eq!(scratch.used.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_spooled_body_is_sent_whole_each_time() {
        let data: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
        let scratch = Arc::new(ScratchUse::new(u64::MAX));
        let charge = scratch.charge(data.len() as u64).unwrap();
        let spool = Spool::fill(body(&data), charge, None).await.unwrap();
        for _ in 0..2 {
            let sent = spool.body().collect().await.unwrap().to_bytes();
            assert!(sent == data);
        }
        drop(spool);
        assert_eq!(scratch.used.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_other_than_its_length_is_refused() {
        let scratch = Arc::new(ScratchUse::new(u64::MAX));
        for (declared, sent) in [(4u64, &b"five!"[..]), (6, b"five!")] {
            let charge = scratch.charge(declared).unwrap();
            let e = Spool::fill(body(sent), charge, None).await.err().unwrap();
            assert!(matches!(e, Error::HttpRequestBodySize(Some(_))), "{e:?}");
        }
        assert_eq!(scratch.used.load(Ordering::SeqCst), 0);
    }
}
