//! Plain HTTP over `wasi:http`, shared by the SDK's clients (the registry
//! client in `distribution`, the S3 client in `s3`, the parallel uploads of
//! `transfer`): building and sending one request, reading an answer's
//! status, headers and (bounded) body, splicing a body into a file by the
//! host, and the words for statuses, methods and `wasi:http` errors. It
//! knows no registry nor bucket: callers put their own context in errors.

use std::fmt;

use crate::Error;
use crate::bindings::wasi::filesystem::types::Descriptor as File;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::dest::write_all;

/// Largest response body read (registry errors, small JSON).
pub(crate) const MAX_ANSWER: u64 = 64 << 10;

/// An HTTP answer: status, the headers we use, body (truncated).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// What a request carries.
pub(crate) enum Body<'a> {
    None,
    Bytes(&'a [u8]),
}

/// What went wrong with one request, below the caller's context (which
/// registry or bucket, which path): the caller puts that in its error.
#[derive(Debug)]
pub(crate) enum Transport {
    /// The host refused a header.
    Header(String, HeaderError),
    /// The method, scheme, authority or path was refused.
    InvalidRequest,
    /// The request has no body.
    NoRequestBody,
    /// The request's body has no stream.
    NoRequestBodyStream,
    /// The host's `wasi:http` error.
    Http(ErrorCode),
    /// No answer came.
    NoResponse,
    /// The answer has no body.
    NoResponseBody,
    /// The answer's body has no stream.
    NoResponseBodyStream,
    /// Sending a streamed body failed (the host's words).
    SendingBody(String),
    /// Receiving a body into a file failed (the host's words).
    ReceivingBody(String),
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Header(key, e) => write!(f, "header {key}: {e:?}"),
            Transport::InvalidRequest => f.write_str("invalid request"),
            Transport::NoRequestBody => f.write_str("no request body"),
            Transport::NoRequestBodyStream => f.write_str("no request body stream"),
            Transport::Http(e) => f.write_str(&describe(e)),
            Transport::NoResponse => f.write_str("no response"),
            Transport::NoResponseBody => f.write_str("no response body"),
            Transport::NoResponseBodyStream => f.write_str("no response body stream"),
            Transport::SendingBody(e) => write!(f, "sending the body: {e}"),
            Transport::ReceivingBody(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Transport {}

/// Why a request got no answer: the transport, or the component's own
/// side (a body it could not write, a blob it could not open).
#[derive(Debug)]
pub(crate) enum SendError {
    /// A request or transport problem.
    Transport(Transport),
    /// The component's own error.
    Own(Error),
}

impl SendError {
    /// The caller's error: `fail` puts the caller's context on a transport
    /// problem.
    pub(crate) fn into_error(self, fail: impl FnOnce(Transport) -> Error) -> Error {
        match self {
            SendError::Transport(t) => fail(t),
            SendError::Own(e) => e,
        }
    }
}

impl From<Transport> for SendError {
    fn from(t: Transport) -> SendError {
        SendError::Transport(t)
    }
}

/// Sends one request (`insecure`: plain HTTP) and waits for the answer's
/// head.
pub(crate) fn send_request(
    method: Method,
    insecure: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
) -> Result<IncomingResponse, SendError> {
    let name = method_name(&method).to_owned();
    let (outgoing, pending) = open_request(method, insecure, authority, path, headers)?;
    {
        let stream = outgoing
            .write()
            .map_err(|()| Transport::NoRequestBodyStream)?;
        match body {
            Body::None => {}
            Body::Bytes(bytes) => {
                write_all(&stream, bytes, &format!("{name} {path}")).map_err(SendError::Own)?
            }
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(Transport::Http)?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(Transport::Http(e).into()),
        Some(Err(())) | None => Err(Transport::NoResponse.into()),
    }
}

/// Starts one request (`insecure`: plain HTTP): the body to write, then
/// finish, and the answer to come.
pub(crate) fn open_request(
    method: Method,
    insecure: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(OutgoingBody, FutureIncomingResponse), Transport> {
    let fields = Fields::new();
    for (key, value) in headers {
        fields
            .append(key, value.as_bytes())
            .map_err(|e| Transport::Header((*key).to_owned(), e))?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if insecure {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let ok = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !ok {
        return Err(Transport::InvalidRequest);
    }
    let outgoing = request.body().map_err(|()| Transport::NoRequestBody)?;
    let pending = outgoing_handler::handle(request, None).map_err(Transport::Http)?;
    Ok((outgoing, pending))
}

/// The answer's status, the headers we use, and its body up to `limit`
/// bytes.
pub(crate) fn read_answer(response: IncomingResponse, limit: u64) -> Result<Answer, Transport> {
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .into_iter()
            .next()
            .and_then(|v| String::from_utf8(v).ok())
    };
    let location = header("location");
    let content_type = header("content-type");
    let incoming = response.consume().map_err(|()| Transport::NoResponseBody)?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| Transport::NoResponseBodyStream)?;
        while (body.len() as u64) < limit {
            match stream.blocking_read(limit - body.len() as u64) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
    }
    drop(incoming);
    Ok(Answer {
        status,
        location,
        content_type,
        body,
    })
}

/// Splices the body of `response` into `file` from offset 0 (the host
/// moves the bytes; they never enter guest memory); the bytes written.
/// `fail` turns a transfer problem into the caller's error.
pub(crate) fn body_to_file(
    response: IncomingResponse,
    file: &File,
    fail: impl Fn(Transport) -> Error,
) -> Result<u64, Error> {
    let incoming = response
        .consume()
        .map_err(|()| fail(Transport::NoResponseBody))?;
    let copied = {
        let input = incoming
            .stream()
            .map_err(|()| fail(Transport::NoResponseBodyStream))?;
        let output = file
            .write_via_stream(0)
            .map_err(|e| Error::Io(format!("opening the file: {e:?}")))?;
        let mut copied = 0u64;
        loop {
            match output.blocking_splice(&input, 1 << 20) {
                Ok(n) => copied += n,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(fail(Transport::ReceivingBody(e.to_debug_string())));
                }
            }
        }
        output
            .blocking_flush()
            .map_err(|e| Error::Io(format!("writing the file: {e:?}")))?;
        copied
    };
    drop(incoming);
    Ok(copied)
}

/// The reason phrase of the statuses a registry or an S3 endpoint answers
/// with.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The method's name on the wire (`GET`, `PUT`, …).
pub(crate) fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Options => "OPTIONS",
        Method::Connect => "CONNECT",
        Method::Trace => "TRACE",
        Method::Other(m) => m,
    }
}

/// One line for a `wasi:http` error code.
pub(crate) fn describe(e: &ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => {
            "request denied by the host: the registry is not among the hosts this instance may reach (the policy's network-hosts)".to_owned()
        }
        ErrorCode::ConnectionRefused => "connection refused".to_owned(),
        ErrorCode::ConnectionTimeout => "connection timed out".to_owned(),
        ErrorCode::InternalError(Some(m)) => m.clone(),
        other => format!("{other:?}"),
    }
}
