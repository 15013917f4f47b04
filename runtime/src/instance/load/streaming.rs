//! A load that streams while the component writes: started with the
//! component (after the daemon's `_ping` and the destination granted), a
//! host task following the staging file ([`Follower`]: whole tar entries
//! only, hashed as they go, the archive's end held back) into the body of
//! `POST /images/load`. Only [`Streaming::finish`], called once the
//! instance has succeeded and its output was checked, sends the rest and
//! ends the body; dropped before that (a failure, a limit, a cancel), the
//! follower stops, the body fails and the connection is cut mid-tarball,
//! which the daemon keeps nothing of.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::load_failed;
use crate::host::bindings::types::Destination;
use crate::instance::failure::Failure;
use crate::outbound::docker_daemon::load::Loaded;
use crate::outbound::docker_daemon::streamed::Chunk;
use crate::outbound::docker_daemon::{Daemon, DaemonError};
use crate::output::destination::Staging;
use crate::output::follow::{CHUNK, Follower, prefix_digest};
use crate::run::reporter::{LogLevel, Reporter};

/// How often the follower looks at a file that has not grown.
const POLL: Duration = Duration::from_millis(20);

/// What the follower hands back when told to stop: itself, and the sender
/// of the body unless the request has already ended.
type Followed = (Follower, Option<mpsc::Sender<Chunk>>);

/// A load into the docker daemon under way while the component runs.
pub(in crate::instance) struct Streaming {
    daemon: Daemon,
    stop: watch::Sender<bool>,
    follow: JoinHandle<Option<Followed>>,
    request: JoinHandle<Result<Loaded, DaemonError>>,
    reporter: Arc<dyn Reporter>,
    id: String,
}

impl Streaming {
    /// Starts loading the file `destination` names in `staging` into
    /// `daemon`, at most `max_bytes` of it before the end; `None` for a
    /// directory output (refused when the instance ends) or when the
    /// staging directory cannot be followed (the file is then sent whole
    /// at the end).
    pub(in crate::instance) fn start(
        daemon: &Daemon,
        (staging, destination): (&Staging, &Destination),
        max_bytes: u64,
        (reporter, id): (Arc<dyn Reporter>, &str),
    ) -> Option<Streaming> {
        let name = destination.file.as_deref()?;
        let dir = staging.dir().try_clone().ok()?;
        let (sender, request) = daemon.load_streamed();
        let (stop, stopped) = watch::channel(false);
        let follower = Follower::new(dir, name, max_bytes);
        Some(Streaming {
            daemon: daemon.clone(),
            stop,
            follow: tokio::spawn(follow(follower, sender, stopped)),
            request,
            reporter,
            id: id.to_owned(),
        })
    }

    /// Ends the load of `file` (the checked output, `len` bytes): the
    /// bytes sent while the component wrote are checked to still be the
    /// file's beginning, then the rest is sent and the body ended; when
    /// they are not (the component rewrote them), this request is cut and
    /// the whole file sent in a new one.
    pub(in crate::instance) async fn finish(
        mut self,
        file: File,
        len: u64,
        deadline: Instant,
    ) -> Result<Loaded, Failure> {
        let _ = self.stop.send(true);
        let followed = (&mut self.follow).await.ok().flatten();
        let file = Arc::new(file);
        // The follower's task panicked: the whole file goes in a new request.
        let Some((follower, sender)) = followed else {
            return self.load_again(file, len).await;
        };
        let (sent, digest) = follower.finish();
        let reading = file.clone();
        let now = tokio::task::spawn_blocking(move || prefix_digest(&reading, sent, deadline))
            .await
            .map_err(|e| Failure::host(format!("checking the output failed: {e}")))?
            .map_err(|e| Failure::host(format!("cannot read the output file: {e}")))?;
        if now != Some(digest) {
            self.reporter.log(
                &self.id,
                LogLevel::Info,
                "the component rewrote bytes already sent to the docker daemon: sending the whole file again",
            );
            // Dropping this request's sender cuts it mid-tarball.
            drop(sender);
            return self.load_again(file, len).await;
        }
        self.reporter.log(
            &self.id,
            LogLevel::Debug,
            &format!("{sent} of {len} bytes were sent to the docker daemon while the component wrote them"),
        );
        if let Some(sender) = sender {
            send_rest(&sender, &file, (sent, len)).await?;
            // A daemon that already answered no longer reads: its answer says why.
            let _ = sender.send(Chunk::End).await;
        }
        match (&mut self.request).await {
            Ok(answer) => answer.map_err(load_failed),
            Err(e) => Err(Failure::host(format!(
                "loading into the docker daemon failed: {e}"
            ))),
        }
    }

    /// Sends the whole of `file` (`len` bytes) in a new request.
    async fn load_again(&self, file: Arc<File>, len: u64) -> Result<Loaded, Failure> {
        let file = Arc::try_unwrap(file).map_err(|_| Failure::host("the output file is shared"))?;
        self.daemon.load(file, len).await.map_err(load_failed)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // The follower's sender goes with it; with no sender left the body
        // fails and the connection is cut (the request's task then ends).
        self.follow.abort();
    }
}

/// The follower's task: hands the file's new bytes to the body as they
/// come, until told to stop; `None` if the follower was lost.
async fn follow(
    mut follower: Follower,
    sender: mpsc::Sender<Chunk>,
    mut stop: watch::Receiver<bool>,
) -> Option<Followed> {
    loop {
        if *stop.borrow() {
            return Some((follower, Some(sender)));
        }
        let (back, bytes) = tokio::task::spawn_blocking(move || {
            let bytes = follower.step();
            (follower, bytes)
        })
        .await
        .ok()?;
        follower = back;
        match bytes {
            Some(bytes) => {
                if sender.send(Chunk::Data(bytes)).await.is_err() {
                    // The request ended (the daemon answered already).
                    return Some((follower, None));
                }
            }
            None if follower.stopped() => {
                let _ = stop.changed().await;
                return Some((follower, Some(sender)));
            }
            None => {
                tokio::select! {
                    changed = stop.changed() => if changed.is_err() {
                        return Some((follower, Some(sender)));
                    },
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

/// Sends bytes `from..len` of `file`.
async fn send_rest(
    sender: &mpsc::Sender<Chunk>,
    file: &Arc<File>,
    (from, len): (u64, u64),
) -> Result<(), Failure> {
    let mut at = from;
    while at < len {
        let reading = file.clone();
        let want = usize::try_from(len - at).map_or(CHUNK, |n| n.min(CHUNK));
        let bytes = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let read = reading.read_at(&mut buf, at)?;
            buf.truncate(read);
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(|e| Failure::host(format!("reading the output failed: {e}")))?
        .map_err(|e| Failure::host(format!("cannot read the output file: {e}")))?;
        if bytes.is_empty() {
            return Err(Failure::host("cannot read the output file: it shrank"));
        }
        at += bytes.len() as u64;
        if sender.send(Chunk::Data(bytes.into())).await.is_err() {
            break;
        }
    }
    Ok(())
}
