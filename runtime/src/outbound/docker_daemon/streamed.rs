//! The body of a load sent as the tarball is written: chunks from a
//! channel, sent chunked. It ends only on an explicit [`Chunk::End`]; a
//! sender dropped before that (the instance failed, was cancelled or ran
//! out of time) makes the body fail, and hyper then closes the connection
//! without the last chunk, so the daemon reads a tarball cut short. moby's
//! load (`image/tarexport/load.go`) untars the whole stream into a
//! temporary directory before it registers anything, and its untar
//! (`chrootarchive`'s `docker-untar`) reads the stream to its end even
//! after the tar's end blocks: a stream cut short fails the load, and no
//! image is created or tagged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Chunks waiting to be sent, per load (1 MiB each, as the follower reads
/// them).
const QUEUED: usize = 4;

/// What the sender of a streamed load sends.
#[derive(Debug)]
pub enum Chunk {
    /// The next bytes of the tarball.
    Data(Bytes),
    /// The tarball is whole: the body ends.
    End,
}

/// The body of a streamed load.
pub struct ChannelBody {
    chunks: mpsc::Receiver<Chunk>,
    ended: bool,
}

/// A sender and the body it feeds.
pub(super) fn channel() -> (mpsc::Sender<Chunk>, ChannelBody) {
    let (sender, chunks) = mpsc::channel(QUEUED);
    (
        sender,
        ChannelBody {
            chunks,
            ended: false,
        },
    )
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match this.chunks.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Chunk::Data(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Chunk::End)) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the load was abandoned",
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn ends_only_when_told() {
        let (sender, body) = channel();
        sender
            .send(Chunk::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        sender.send(Chunk::End).await.unwrap();
        let whole = body.collect().await.unwrap().to_bytes();
        assert_eq!(&whole[..], b"ab");
        let (sender, body) = channel();
        sender
            .send(Chunk::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        drop(sender);
        let error = body.collect().await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
    }
}
