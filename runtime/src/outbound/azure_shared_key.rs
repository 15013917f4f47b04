//! Azure Storage requests authorised by the host, so the account key (or a
//! SAS token) never reaches a component: Shared Key signing of the Blob
//! service (<https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>),
//! or a SAS token added to the query.
//!
//! Shared Key: the string to sign is the method, eleven standard headers
//! (`Content-Length` empty when zero), the `x-ms-*` headers sorted, and the
//! canonical resource (`/ACCOUNT` + the path as sent + the query's
//! parameters sorted, one per line); the signature is its HMAC-SHA256
//! under the base64-decoded key.

use std::fmt;

use base64::Engine as _;
use http::HeaderValue;
use http::header::AUTHORIZATION;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::outbound::sigv4::hmac_sha256;

/// The Blob service version the host asks for.
pub const API_VERSION: &str = "2021-08-06";

/// How an account's requests are authorised.
#[derive(Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// Shared Key with this (decoded) account key.
    SharedKey(Vec<u8>),
    /// A SAS token (the query of `account_url`, without `?`) added to every
    /// request.
    Sas(String),
}

impl fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureAuth::SharedKey(_) => f.write_str("SharedKey(<hidden>)"),
            AzureAuth::Sas(_) => f.write_str("Sas(<hidden>)"),
        }
    }
}

/// Where and how one instance's Azure Blob requests are authorised.
#[derive(Clone, Debug)]
pub struct AzureSigning {
    /// The account endpoint's `host[:port]`; only requests to it are
    /// authorised.
    pub authority: String,
    /// The storage account.
    pub account: String,
    /// The key or SAS token.
    pub auth: AzureAuth,
    /// Where the key or token came from, for error messages.
    pub source: String,
}

/// Why a request could not be authorised.
#[derive(Debug, thiserror::Error)]
pub enum AzureSignError {
    /// A header value is not valid.
    #[error("invalid header: {0}")]
    Header(#[from] http::header::InvalidHeaderValue),
    /// The URI with the SAS token added is not valid.
    #[error("invalid URI with the SAS token: {0}")]
    Uri(#[from] http::Error),
    /// The request time cannot be written as an HTTP date.
    #[error("cannot write the request time: {0}")]
    Time(#[from] time::error::Format),
}

impl AzureSigning {
    /// Whether a request to `authority` goes to this account's endpoint.
    pub fn covers(&self, authority: &str) -> bool {
        authority.eq_ignore_ascii_case(&self.authority)
    }

    /// Authorises `request` now: Shared Key (sets `x-ms-date`,
    /// `x-ms-version` and `authorization`) or the SAS token in the query.
    pub fn sign<B>(&self, request: &mut http::Request<B>) -> Result<(), AzureSignError> {
        self.sign_at(request, OffsetDateTime::now_utc())
    }

    fn sign_at<B>(
        &self,
        request: &mut http::Request<B>,
        at: OffsetDateTime,
    ) -> Result<(), AzureSignError> {
        let headers = request.headers_mut();
        headers.insert("x-ms-version", HeaderValue::from_static(API_VERSION));
        let key = match &self.auth {
            AzureAuth::Sas(token) => return add_sas(request, token),
            AzureAuth::SharedKey(key) => key,
        };
        let date = at.to_offset(time::UtcOffset::UTC).format(HTTP_DATE)?;
        headers.insert("x-ms-date", HeaderValue::from_str(&date)?);
        let to_sign = self.string_to_sign(request);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key, to_sign.as_bytes()));
        let mut value = HeaderValue::from_str(&format!("SharedKey {}:{signature}", self.account))?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }

    /// Shared Key's string to sign for the Blob service.
    fn string_to_sign<B>(&self, request: &http::Request<B>) -> String {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .unwrap_or_default()
        };
        let mut length = header("content-length");
        if length == "0" {
            length.clear();
        }
        let mut out = format!("{}\n", request.method().as_str());
        for name in ["content-encoding", "content-language"] {
            out.push_str(&header(name));
            out.push('\n');
        }
        out.push_str(&length);
        out.push('\n');
        for name in [
            "content-md5",
            "content-type",
            "date",
            "if-modified-since",
            "if-match",
            "if-none-match",
            "if-unmodified-since",
            "range",
        ] {
            out.push_str(&header(name));
            out.push('\n');
        }
        let mut ms: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                (name.as_str().to_string(), value)
            })
            .collect();
        ms.sort();
        for (name, value) in ms {
            out.push_str(&format!("{name}:{value}\n"));
        }
        out.push_str(&self.canonical_resource(request.uri()));
        out
    }

    /// `/ACCOUNT/PATH` and, for each query parameter sorted by its
    /// lower-cased name, `\nname:value[,value...]` (values decoded, sorted).
    fn canonical_resource(&self, uri: &http::Uri) -> String {
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let mut out = format!("/{}{path}", self.account);
        let mut params: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params
                .entry(percent_decode(name).to_ascii_lowercase())
                .or_default()
                .push(percent_decode(value));
        }
        for (name, mut values) in params {
            values.sort();
            out.push_str(&format!("\n{name}:{}", values.join(",")));
        }
        out
    }
}

/// `request` with `token` added to its query.
fn add_sas<B>(request: &mut http::Request<B>, token: &str) -> Result<(), AzureSignError> {
    let uri = request.uri();
    let path_and_query = match uri.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}&{token}", uri.path()),
        _ => format!("{}?{token}", uri.path()),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(http::Error::from)?);
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(http::Error::from)?;
    Ok(())
}

/// `%XX` escapes decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), as `x-ms-date` takes it.
const HTTP_DATE: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(auth: AzureAuth) -> AzureSigning {
        AzureSigning {
            authority: "127.0.0.1:10000".into(),
            account: "devstoreaccount1".into(),
            auth,
            source: "test".into(),
        }
    }

    #[test]
    fn string_to_sign_follows_the_blob_service_rules() {
        let s = signing(AzureAuth::SharedKey(b"key".to_vec()));
        let request = http::Request::put(
            "http://127.0.0.1:10000/devstoreaccount1/cache/blobs/sha256:ab?restype=container&Comp=list&comp=a%20b",
        )
        .header("content-length", "0")
        .header("if-none-match", "*")
        .header("x-ms-version", API_VERSION)
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-date", "Fri, 04 Dec 2026 13:00:00 GMT")
        .body(())
        .unwrap();
        assert_eq!(
            s.string_to_sign(&request),
            "PUT\n\n\n\n\n\n\n\n\n*\n\n\n\
             x-ms-blob-type:BlockBlob\nx-ms-date:Fri, 04 Dec 2026 13:00:00 GMT\nx-ms-version:2021-08-06\n\
             /devstoreaccount1/devstoreaccount1/cache/blobs/sha256:ab\ncomp:a b,list\nrestype:container"
        );
    }

    #[test]
    fn signs_with_the_key_and_hides_it() {
        let key = b"0123456789abcdef".to_vec();
        let s = signing(AzureAuth::SharedKey(key.clone()));
        let mut request = http::Request::get("http://127.0.0.1:10000/devstoreaccount1/c/x")
            .body(())
            .unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_795_444_283).unwrap();
        s.sign_at(&mut request, at).unwrap();
        assert_eq!(
            request.headers()["x-ms-date"],
            "Mon, 23 Nov 2026 14:31:23 GMT"
        );
        let expected = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(&key, s.string_to_sign(&request).as_bytes()));
        assert_eq!(
            request.headers()[AUTHORIZATION],
            format!("SharedKey devstoreaccount1:{expected}").as_str()
        );
        assert!(!format!("{s:?}").contains("0123456789"));
    }

    #[test]
    fn a_sas_token_goes_into_the_query() {
        let s = signing(AzureAuth::Sas("sv=2021&sig=abc%2B".into()));
        let mut request =
            http::Request::head("http://127.0.0.1:10000/devstoreaccount1/c?restype=container")
                .body(())
                .unwrap();
        s.sign_at(&mut request, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:10000/devstoreaccount1/c?restype=container&sv=2021&sig=abc%2B"
        );
        assert!(request.headers().get(AUTHORIZATION).is_none());
        assert!(s.covers("127.0.0.1:10000") && !s.covers("127.0.0.1:10001"));
        assert!(!format!("{s:?}").contains("abc"));
    }
}
