//! Plain HTTP over `wasi:http`, shared by the SDK's clients (the registry
//! client in `distribution`, the S3 client in `s3`, the parallel uploads of
//! `transfer`): building and sending one request, reading an answer's
//! status, headers and (bounded) body, splicing a body into a file by the
//! host, and the words for statuses, methods and `wasi:http` errors. It
//! knows no registry nor bucket: callers put their own context in errors.

use crate::Error;
use crate::bindings::wasi::filesystem::types::Descriptor as File;
use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody,
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

/// Sends one request (`insecure`: plain HTTP) and waits for the answer's
/// head. Fails with `Ok(message)` for a request or transport problem, or
/// `Err(error)` for a failed body copy.
pub(crate) fn send_request(
    method: Method,
    insecure: bool,
    authority: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
) -> Result<IncomingResponse, Result<String, Error>> {
    let name = method_name(&method).to_owned();
    let (outgoing, pending) =
        open_request(method, insecure, authority, path, headers).map_err(Ok)?;
    {
        let stream = outgoing
            .write()
            .map_err(|()| Ok("no request body stream".to_owned()))?;
        match body {
            Body::None => {}
            Body::Bytes(bytes) => {
                write_all(&stream, bytes, &format!("{name} {path}")).map_err(Err)?
            }
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| Ok(describe(&e)))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(Ok(describe(&e))),
        Some(Err(())) | None => Err(Ok("no response".into())),
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
) -> Result<(OutgoingBody, FutureIncomingResponse), String> {
    let fields = Fields::new();
    for (key, value) in headers {
        fields
            .append(key, value.as_bytes())
            .map_err(|e| format!("header {key}: {e:?}"))?;
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
        return Err("invalid request".into());
    }
    let outgoing = request.body().map_err(|()| "no request body".to_owned())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| describe(&e))?;
    Ok((outgoing, pending))
}

/// The answer's status, the headers we use, and its body up to `limit`
/// bytes.
pub(crate) fn read_answer(response: IncomingResponse, limit: u64) -> Result<Answer, String> {
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
    let incoming = response
        .consume()
        .map_err(|()| "no response body".to_string())?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| "no response body stream".to_string())?;
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
    fail: impl Fn(String) -> Error,
) -> Result<u64, Error> {
    let incoming = response
        .consume()
        .map_err(|()| fail("no response body".into()))?;
    let copied = {
        let input = incoming
            .stream()
            .map_err(|()| fail("no response body stream".into()))?;
        let output = file
            .write_via_stream(0)
            .map_err(|e| Error::Io(format!("opening the file: {e:?}")))?;
        let mut copied = 0u64;
        loop {
            match output.blocking_splice(&input, 1 << 20) {
                Ok(n) => copied += n,
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(fail(e.to_debug_string()));
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
