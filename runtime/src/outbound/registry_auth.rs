//! The registry token flow, done by the host: parsing a
//! `WWW-Authenticate` challenge, and a cache of bearer tokens per registry
//! and scope.
//!
//! A registry that wants a token answers `401` with
//! `WWW-Authenticate: Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:app:pull,push"`;
//! the client gets a token from the realm (with basic credentials when it
//! has them) and repeats the request with `Authorization: Bearer TOKEN`.
//! With an identity token (docker's `<token>` user name) the client instead
//! POSTs an OAuth2 refresh-token grant to the realm, as the docker CLI does.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{RequestOptions, default_send_request};

use super::docker_config::Login;

/// Largest token endpoint answer read.
const TOKEN_ANSWER_BYTES: usize = 64 << 10;

/// The `client_id` of the OAuth2 refresh-token grant.
const CLIENT_ID: &str = "outport";

/// Why no token came from a realm.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The challenge's realm is not a URL.
    #[error("realm {realm:?} is not a URL: {source}")]
    Realm {
        /// The realm.
        realm: String,
        /// Why.
        #[source]
        source: http::Error,
    },
    /// The request failed.
    #[error("{host}: {source}")]
    Send {
        /// The realm's host.
        host: String,
        /// Why.
        #[source]
        source: wasmtime_wasi_http::Error,
    },
    /// The answer could not be read.
    #[error("{host}: reading the answer: {message}")]
    Read {
        /// The realm's host.
        host: String,
        /// Why.
        message: String,
    },
    /// The realm refused.
    #[error("{host} answered {status}")]
    Refused {
        /// The realm's host.
        host: String,
        /// Its status.
        status: http::StatusCode,
    },
    /// The answer holds no token.
    #[error("{host} answered without a token")]
    NoToken {
        /// The realm's host.
        host: String,
    },
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send basic credentials.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: fetch a token from `realm`.
    Bearer {
        /// The token endpoint (a URL).
        realm: String,
        /// The `service` parameter, if given.
        service: Option<String>,
        /// The `scope` parameter, if given.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses one challenge; `None` for other schemes or a bearer challenge
    /// without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }

    /// The URL to ask for a token: the realm with `service` and `scope`
    /// as query parameters.
    pub fn token_url(&self) -> Option<String> {
        let Challenge::Bearer {
            realm,
            service,
            scope,
        } = self
        else {
            return None;
        };
        let mut url = realm.clone();
        let mut sep = if realm.contains('?') { '&' } else { '?' };
        for (key, value) in [("service", service), ("scope", scope)] {
            if let Some(value) = value {
                url.push_str(&format!("{sep}{key}={}", query_escape(value)));
                sep = '&';
            }
        }
        Some(url)
    }

    /// The OAuth2 refresh-token grant for this challenge: the realm and the
    /// form body (`grant_type=refresh_token`, the token, `service`, `scope`,
    /// `client_id`).
    pub fn refresh_grant(&self, refresh_token: &str) -> Option<(String, String)> {
        let Challenge::Bearer {
            realm,
            service,
            scope,
        } = self
        else {
            return None;
        };
        let mut form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={CLIENT_ID}",
            query_escape(refresh_token)
        );
        for (key, value) in [("service", service), ("scope", scope)] {
            if let Some(value) = value {
                form.push_str(&format!("&{key}={}", query_escape(value)));
            }
        }
        Some((realm.clone(), form))
    }
}

/// Gets a token for `challenge` from its realm: an OAuth2 refresh-token
/// grant when `login` is an identity token, else a `GET` with basic
/// credentials when there are some.
pub async fn fetch_token(
    challenge: &Challenge,
    login: Option<&Login>,
    options: RequestOptions,
) -> Result<String, TokenError> {
    let (method, url, form) = match login.and_then(Login::identity_token) {
        Some(refresh) => match challenge.refresh_grant(refresh) {
            Some((realm, form)) => (Method::POST, realm, Some(form)),
            None => (Method::GET, String::new(), None),
        },
        None => (Method::GET, challenge.token_url().unwrap_or_default(), None),
    };
    let mut builder = Request::builder().method(method).uri(&url);
    if form.is_some() {
        builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let body = Full::new(Bytes::from(form.clone().unwrap_or_default()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut request = builder.body(body).map_err(|source| TokenError::Realm {
        realm: url.clone(),
        source,
    })?;
    if let Some(login) = login.filter(|l| l.identity_token().is_none())
        && let Ok(mut value) = HeaderValue::from_str(&login.basic())
    {
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let host = request.uri().host().unwrap_or_default().to_string();
    let (response, io) = default_send_request(request, Some(options))
        .await
        .map_err(|source| TokenError::Send {
            host: host.clone(),
            source,
        })?;
    let status = response.status();
    let conn = tokio::spawn(io);
    let body = Limited::new(response.into_body(), TOKEN_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| TokenError::Read {
            host: host.clone(),
            message: e.to_string().replace('\n', " "),
        })?
        .to_bytes();
    conn.abort();
    if !status.is_success() {
        return Err(TokenError::Refused { host, status });
    }
    token_from_json(&body).ok_or(TokenError::NoToken { host })
}

/// `key=value` and `key="quoted, value"` pairs separated by commas; keys
/// lower-cased.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        params.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    params
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved
/// characters).
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The repository a registry API path is about: `/v2/team/app/blobs/…` →
/// `team/app`.
pub fn repository_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|marker| rest.find(marker))
        .min()
        .map(|end| &rest[..end])
}

/// Bearer tokens by registry and scope.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: HashMap<(String, String), String>,
}

impl TokenCache {
    /// Remembers `token` for `scope` at `registry`.
    pub fn insert(&mut self, registry: &str, scope: &str, token: String) {
        self.tokens
            .insert((registry.to_string(), scope.to_string()), token);
    }

    /// The best token for `repository` at `registry`: one whose scope grants
    /// push, else any for that repository, else a scope-less one.
    pub fn find(&self, registry: &str, repository: Option<&str>) -> Option<&str> {
        let mut best: Option<(u8, &str)> = None;
        for ((reg, scope), token) in &self.tokens {
            if reg != registry {
                continue;
            }
            let rank = match repository {
                _ if scope.is_empty() => 1,
                Some(repo) => match scope_actions(scope, repo) {
                    Some(actions) if actions.split(',').any(|a| a == "push" || a == "*") => 3,
                    Some(_) => 2,
                    None => continue,
                },
                None => continue,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, token));
            }
        }
        best.map(|(_, token)| token)
    }
}

/// The actions a scope (`repository:NAME:pull,push`, possibly several
/// separated by spaces) grants on `repository`.
fn scope_actions<'a>(scope: &'a str, repository: &str) -> Option<&'a str> {
    scope.split(' ').find_map(|one| {
        let rest = one.strip_prefix("repository:")?;
        let (name, actions) = rest.rsplit_once(':')?;
        (name == repository).then_some(actions)
    })
}

/// The token in a token endpoint's JSON answer (`token`, or OAuth2's
/// `access_token`).
pub fn token_from_json(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| value.get(*k)?.as_str().filter(|t| !t.is_empty()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
