//! Redirects of blob downloads: where they may go, with which access, and
//! what messages show of them.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Empty};

use super::{Broken, MAX_REDIRECTS, follow, redirect_access, resolve};
use crate::host::http::HttpAccess;
use crate::input::remote::Remote;
use crate::outbound::docker_config::Credentials;
use crate::run::reporter::Silent;
use crate::sandbox::allow_list::AllowList;
use crate::sandbox::limits::Limits;

const REGISTRY: &str = "registry.example:5000";
const BLOB: &str =
    "/v2/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000";
/// What a signed storage URL carries in its query.
const SECRET: &str = "X-Amz-Signature=s3cr3t";

/// The registry `registry` (`host:port`), over HTTPS unless `insecure`,
/// with a login for it in the docker config.
fn remote_at(registry: &str, insecure: bool) -> Remote {
    let config = format!(r#"{{"auths":{{"{registry}":{{"auth":"dXNlcjpwYXNz"}}}}}}"#);
    let credentials = Credentials::parse(&config, "config.json").expect("a docker config");
    let allowed = AllowList::parse(&[registry]).expect("a host");
    let scheme = if insecure { "http" } else { "https" };
    Remote {
        access: HttpAccess::new(
            "input",
            allowed,
            credentials,
            &Limits::default(),
            Arc::new(Silent),
        ),
        base: format!("{scheme}://{registry}"),
        registry: registry.to_owned(),
        repository: "app".to_owned(),
        insecure,
    }
}

fn from() -> String {
    format!("https://{REGISTRY}{BLOB}")
}

#[test]
fn a_redirect_to_plain_http_is_refused_without_src_insecure() {
    let remote = remote_at(REGISTRY, false);
    let next = format!("http://cdn.example/blob?{SECRET}");
    let refused = redirect_access(&remote, &from(), &next, &remote.access)
        .err()
        .expect("refused");
    assert_eq!(
        refused,
        "answered a redirect to plain HTTP (http://cdn.example/blob), which is not followed without --src-insecure"
    );
    // With --src-insecure it is followed, to that host alone.
    let remote = remote_at(REGISTRY, true);
    let access = redirect_access(&remote, &from(), &next, &remote.access).expect("followed");
    assert!(access.allowed().allows("cdn.example", 80));
    assert!(!access.allowed().allows("cdn.example", 443));
}

#[test]
fn the_same_host_keeps_the_access_with_its_credentials() {
    let remote = remote_at(REGISTRY, false);
    let next = format!("https://{REGISTRY}/elsewhere/blob");
    let access = redirect_access(&remote, &from(), &next, &remote.access).expect("followed");
    assert!(access.is_clone_of(&remote.access));
}

#[tokio::test]
async fn another_host_gets_no_credentials_and_only_that_host() {
    let remote = remote_at(REGISTRY, false);
    assert!(
        remote
            .access
            .credentials()
            .lookup(REGISTRY)
            .await
            .ok()
            .flatten()
            .is_some(),
        "the registry's own access has its login"
    );
    let next = format!("https://cdn.example/blob?{SECRET}");
    let access = redirect_access(&remote, &from(), &next, &remote.access).expect("followed");
    assert!(!access.is_clone_of(&remote.access));
    for host in [REGISTRY, "cdn.example"] {
        let login = access.credentials().lookup(host).await.expect("no helper");
        assert!(login.is_none(), "a login for {host}");
    }
    assert_eq!(access.allowed().to_string(), "cdn.example:443");
    assert!(access.allowed().allows("cdn.example", 443));
    assert!(!access.allowed().allows("registry.example", 5000));
    // Another port of the same host is another host.
    let next = "https://registry.example:5001/blob";
    let access = redirect_access(&remote, &from(), next, &remote.access).expect("followed");
    assert_eq!(access.allowed().to_string(), "registry.example:5001");
}

#[test]
fn locations_resolve_against_the_url_redirected_from() {
    let base = from();
    // Absolute: as it is; a path: on the same scheme and host.
    let absolute = format!("https://cdn.example/blob?{SECRET}");
    assert_eq!(resolve(&base, &absolute).as_deref(), Ok(absolute.as_str()));
    assert_eq!(
        resolve(&base, "/storage/blob?x=1").as_deref(),
        Ok("https://registry.example:5000/storage/blob?x=1")
    );
    // Relative to the path, or to the scheme: not followed, and the
    // query not shown.
    for location in ["storage/blob", "//cdn.example/blob"] {
        let refused = resolve(&base, &format!("{location}?{SECRET}")).expect_err("followed");
        assert_eq!(
            refused,
            format!("answered a redirect to {location:?}, which is not followed")
        );
    }
}

#[tokio::test]
async fn a_manifest_redirect_is_named_without_its_query() {
    let remote = remote_at(REGISTRY, false);
    let body = Empty::<bytes::Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let response = Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(
            http::header::LOCATION,
            format!("https://cdn.example/m?{SECRET}"),
        )
        .body(body)
        .expect("a response");
    let path = "/v2/app/manifests/1";
    let error = remote
        .refused(&remote.access, response, path, "")
        .await
        .to_string();
    assert!(
        error.contains("a redirect to https://cdn.example/m, which is not followed")
            && !error.contains(SECRET),
        "{error}"
    );
}

/// A server on 127.0.0.1 that answers every request with a redirect to
/// the same path with a signed query; its port and the requests it got.
fn redirect_loop() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let n = count.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                client,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {BLOB}?n={n}&{SECRET}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, seen)
}

#[tokio::test]
async fn more_than_five_redirects_are_not_followed() {
    let (port, seen) = redirect_loop();
    let remote = remote_at(&format!("127.0.0.1:{port}"), true);
    let outcome = follow(&remote, BLOB, 0).await;
    let Err(Broken::Fatal(error)) = outcome else {
        panic!("the loop was followed to its end, or retried");
    };
    let error = error.to_string();
    assert!(
        error.contains(&format!("more than {MAX_REDIRECTS} redirects"))
            && error.contains(&format!("GET {BLOB}"))
            && !error.contains(SECRET),
        "{error}"
    );
    // The request and the five redirects followed.
    assert_eq!(seen.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn a_redirect_that_fails_is_named_without_its_query() {
    // A port nothing listens on, redirected to from a server that does.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("address").port();
    drop(closed);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        if let Some(mut client) = listener.incoming().flatten().next() {
            let mut buf = [0u8; 1024];
            let _ = client.read(&mut buf);
            let _ = write!(
                client,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{closed_port}/blob?{SECRET}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let remote = remote_at(&format!("127.0.0.1:{port}"), true);
    let Err(Broken::Retry(message)) = follow(&remote, BLOB, 0).await else {
        panic!("a failed connection is worth another try");
    };
    assert!(
        message.starts_with(&format!(
            "redirected to http://127.0.0.1:{closed_port}/blob: "
        )) && !message.contains(SECRET),
        "{message}"
    );
}
