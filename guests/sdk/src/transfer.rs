//! Several uploads at once from a single-threaded component: each request's
//! body is a blob the host streams, and bytes never enter guest memory.
//!
//! [`upload_all`] keeps up to N requests in flight. For each it opens the
//! blob as a host input-stream (`blob.read`), starts the request
//! (`outgoing-handler.handle`), and then moves bytes with non-blocking
//! `splice` from the blob's stream into the body's output-stream, for every
//! request in turn; when none can move, it waits with `wasi:io/poll` on what
//! each one waits for (room in a body, bytes of a blob, an answer). Each
//! request's outcome goes to a callback as it arrives, and the next request
//! takes the freed place.

use crate::bindings::wasi::http::types::{FutureIncomingResponse, Method, OutgoingBody};
use crate::bindings::wasi::io::poll::{Pollable, poll};
use crate::bindings::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::http::{Answer, MAX_ANSWER, SendError, Transport, open_request, read_answer};
use crate::{Blob, Error};

/// Largest piece one `splice` moves.
const SPLICE: u64 = 1 << 20;

/// One request whose body is a blob's bytes.
pub(crate) struct Upload<'a> {
    /// The method (`PUT`).
    pub(crate) method: Method,
    /// Plain HTTP instead of HTTPS.
    pub(crate) insecure: bool,
    /// `host[:port]`.
    pub(crate) authority: String,
    /// Path and query.
    pub(crate) path: String,
    /// Headers besides `content-length` (the blob's size, set here).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The body.
    pub(crate) blob: &'a Blob,
}

/// What became of one upload: the answer, or why there is none.
pub(crate) type Outcome = Result<Answer, SendError>;

/// Sends every upload, starting them in order, at most `parallel` (at
/// least 1) in flight at once. `answered(i, outcome)` gets each one's
/// outcome as it comes; its error stops everything (requests still in
/// flight are dropped, which cancels them) and is returned.
pub(crate) fn upload_all(
    uploads: &[Upload<'_>],
    parallel: usize,
    mut answered: impl FnMut(usize, Outcome) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut waiting = uploads.iter().enumerate();
    let mut active: Vec<InFlight> = Vec::new();
    loop {
        while active.len() < parallel.max(1) {
            let Some((index, upload)) = waiting.next() else {
                break;
            };
            match InFlight::start(index, upload) {
                Ok(transfer) => active.push(transfer),
                Err(e) => answered(index, Err(e))?,
            }
        }
        if active.is_empty() {
            return Ok(());
        }
        let mut moved = false;
        let mut wait_for: Vec<Pollable> = Vec::new();
        let mut slot = 0;
        while slot < active.len() {
            match active[slot].step() {
                Step::Moved => {
                    moved = true;
                    slot += 1;
                }
                Step::Wait(pollable) => {
                    wait_for.push(pollable);
                    slot += 1;
                }
                Step::Done(outcome) => {
                    let index = active.remove(slot).index;
                    answered(index, outcome)?;
                    moved = true;
                }
            }
        }
        if !moved {
            poll(&wait_for.iter().collect::<Vec<_>>());
        }
    }
}

/// What one step of a transfer did.
enum Step {
    /// Bytes moved or the transfer changed stage: step again.
    Moved,
    /// Nothing can move until this is ready.
    Wait(Pollable),
    /// The transfer is over.
    Done(Outcome),
}

/// One request in flight. Fields drop in order: the body's stream before
/// the body.
struct InFlight {
    index: usize,
    input: InputStream,
    /// The body's stream and the body, until the blob is all sent.
    sending: Option<(OutputStream, OutgoingBody)>,
    answer: FutureIncomingResponse,
}

impl InFlight {
    fn start(index: usize, upload: &Upload<'_>) -> Result<InFlight, SendError> {
        let input = upload.blob.read().map_err(SendError::Own)?;
        let mut headers = upload.headers.clone();
        headers.push(("content-length", upload.blob.descriptor().size.to_string()));
        let (body, answer) = open_request(
            upload.method.clone(),
            upload.insecure,
            &upload.authority,
            &upload.path,
            &headers,
        )?;
        let output = body.write().map_err(|()| Transport::NoRequestBodyStream)?;
        Ok(InFlight {
            index,
            input,
            sending: Some((output, body)),
            answer,
        })
    }

    /// Moves what can move without blocking.
    fn step(&mut self) -> Step {
        let Some((output, _)) = &self.sending else {
            return match self.answer.get() {
                None => Step::Wait(self.answer.subscribe()),
                Some(Ok(Ok(response))) => {
                    Step::Done(read_answer(response, MAX_ANSWER).map_err(SendError::from))
                }
                Some(Ok(Err(e))) => Step::Done(Err(Transport::Http(e).into())),
                Some(Err(())) => Step::Done(Err(Transport::NoResponse.into())),
            };
        };
        match output.splice(&self.input, SPLICE) {
            Ok(0) => match output.check_write() {
                Ok(0) => Step::Wait(output.subscribe()),
                Ok(_) => Step::Wait(self.input.subscribe()),
                Err(_) => self.finish(),
            },
            Ok(_) => Step::Moved,
            Err(StreamError::Closed) => self.finish(),
            Err(StreamError::LastOperationFailed(e)) => {
                Step::Done(Err(Transport::SendingBody(e.to_debug_string()).into()))
            }
        }
    }

    /// The blob is sent (or the body closed): ends the body.
    fn finish(&mut self) -> Step {
        let Some((output, body)) = self.sending.take() else {
            return Step::Moved;
        };
        drop(output);
        match OutgoingBody::finish(body, None) {
            Ok(()) => Step::Moved,
            Err(e) => Step::Done(Err(Transport::Http(e).into())),
        }
    }
}
