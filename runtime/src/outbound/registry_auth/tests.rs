//! The token flow's unit tests: challenges, scopes, the token cache.

use super::*;

#[test]
fn bearer_challenges() {
    let c = Challenge::parse(
        r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#,
    )
    .unwrap();
    assert_eq!(
        c,
        Challenge::Bearer {
            realm: "https://auth.example.com/token".into(),
            service: Some("registry.example.com".into()),
            scope: Some("repository:team/app:pull,push".into()),
        }
    );
    assert_eq!(
        c.token_url().unwrap(),
        "https://auth.example.com/token?service=registry.example.com&scope=repository%3Ateam%2Fapp%3Apull%2Cpush"
    );
    // Unquoted values, odd spacing and case, an escaped quote, no scope,
    // a realm that already has a query.
    let c = Challenge::parse(r#"bearer  Realm=https://a/t?x=1 , service="s\"q""#).unwrap();
    assert_eq!(c.token_url().unwrap(), "https://a/t?x=1&service=s%22q");
    assert_eq!(
        Challenge::parse(r#"Basic realm="Registry""#),
        Some(Challenge::Basic)
    );
    assert_eq!(Challenge::parse(r#"Bearer service="s""#), None);
    assert_eq!(Challenge::parse("Negotiate abc"), None);
    assert_eq!(Challenge::Basic.token_url(), None);
}

#[test]
fn repositories_of_api_paths() {
    assert_eq!(
        repository_of("/v2/team/app/blobs/uploads/"),
        Some("team/app")
    );
    assert_eq!(repository_of("/v2/app/manifests/1.0"), Some("app"));
    assert_eq!(repository_of("/v2/a/blobs/x/manifests/y"), Some("a"));
    assert_eq!(repository_of("/v2/"), None);
    assert_eq!(repository_of("/token"), None);
}

#[test]
fn tokens_prefer_push_scopes_of_the_repository() {
    let mut cache = TokenCache::default();
    cache.insert("r:5000", "repository:app:pull", "pull".into());
    assert_eq!(cache.find("r:5000", Some("app")), Some("pull"));
    cache.insert("r:5000", "repository:app:pull,push", "push".into());
    cache.insert("r:5000", "repository:other:pull,push", "other".into());
    assert_eq!(cache.find("r:5000", Some("app")), Some("push"));
    assert_eq!(cache.find("r:5000", Some("other")), Some("other"));
    assert_eq!(cache.find("r:5000", Some("third")), None);
    assert_eq!(cache.find("r:5001", Some("app")), None);
    cache.insert("r:5000", "", "any".into());
    assert_eq!(cache.find("r:5000", Some("third")), Some("any"));
    assert_eq!(cache.find("r:5000", None), Some("any"));
}

#[test]
fn token_answers() {
    assert_eq!(token_from_json(br#"{"token":"t1"}"#).as_deref(), Some("t1"));
    assert_eq!(
        token_from_json(br#"{"access_token":"t2","expires_in":60}"#).as_deref(),
        Some("t2")
    );
    assert_eq!(token_from_json(br#"{"token":""}"#), None);
    assert_eq!(token_from_json(b"<html>"), None);
}

/// Serves one request on 127.0.0.1 with `answer` (a JSON body, status
/// 200); gives back the address and, once served, the request's text.
fn token_server(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let served = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    break;
                }
            }
        }
        write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        String::from_utf8_lossy(&seen).to_string()
    });
    (addr, served)
}

fn challenge(addr: &str) -> Challenge {
    Challenge::Bearer {
        realm: format!("http://{addr}/token"),
        service: Some("reg".into()),
        scope: Some("repository:app:pull".into()),
    }
}

#[tokio::test]
async fn identity_tokens_are_exchanged_by_the_refresh_token_grant() {
    let (addr, served) = token_server(r#"{"access_token":"at-1","refresh_token":"r2"}"#);
    let login = Login {
        username: "<token>".into(),
        password: "refresh/me".into(),
    };
    let token = fetch_token(&challenge(&addr), Some(&login), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(token, "at-1");
    let request = served.join().unwrap();
    assert!(request.starts_with("POST /token HTTP/1.1"), "{request}");
    assert!(
        request.ends_with(
            "grant_type=refresh_token&refresh_token=refresh%2Fme&client_id=outport&service=reg&scope=repository%3Aapp%3Apull"
        ),
        "{request}"
    );
    assert!(
        request.contains("application/x-www-form-urlencoded"),
        "{request}"
    );
    assert!(
        !request.to_ascii_lowercase().contains("authorization"),
        "{request}"
    );
}

#[tokio::test]
async fn passwords_ask_for_a_token_with_basic_auth() {
    let (addr, served) = token_server(r#"{"token":"t-1"}"#);
    let login = Login {
        username: "bob".into(),
        password: "pw".into(),
    };
    let token = fetch_token(&challenge(&addr), Some(&login), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(token, "t-1");
    let request = served.join().unwrap();
    assert!(
        request.starts_with("GET /token?service=reg&scope=repository%3Aapp%3Apull HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains("authorization: Basic Ym9iOnB3"),
        "{request}"
    );
    let (addr, _served) = token_server(r#"{"nothing":1}"#);
    let e = fetch_token(&challenge(&addr), None, RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "127.0.0.1 answered without a token");
}
