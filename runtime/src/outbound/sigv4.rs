//! AWS Signature Version 4 for S3 requests, done by the host so the secret
//! never reaches a component.
//!
//! A small implementation of the documented algorithm
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>)
//! on `sha2`, instead of the much heavier `aws-sigv4` crate: the canonical
//! request (method, the path as sent, sorted query, the signed headers,
//! payload hash), the string to sign over its SHA-256, and the HMAC-SHA256
//! chain of date, region and service. Bodies stream, so the payload hash is
//! `UNSIGNED-PAYLOAD`. Signed headers: `host`, `content-md5`, `range`,
//! `accept-encoding` and every `x-amz-*` header.
//!
//! As the AWS SDK does (and so BuildKit), every request asks for
//! `accept-encoding: identity`, signed, so that nothing on the way
//! compresses an answer; `disable_accept_encoding=true` sends no
//! `accept-encoding` at all, for stores behind a front end that rewrites
//! the header (Google Cloud Storage's appends `gzip(gfe)`, which breaks a
//! signature over it).

use hmac::{Hmac, Mac};
use http::HeaderValue;
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, HOST};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::outbound::aws_credentials::AwsCredentials;
use crate::outbound::retry::RetryPolicy;

/// The payload hash of a request whose body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Where and how one instance's S3 requests are signed.
#[derive(Clone, Debug)]
pub struct S3Signing {
    /// The endpoint's `host[:port]` as requests name it; only requests to
    /// it (or to `BUCKET.` it, virtual-hosted style) are signed.
    pub authority: String,
    /// The bucket, for virtual-hosted-style authorities.
    pub bucket: String,
    /// The signing region.
    pub region: String,
    /// The credentials signed with.
    pub credentials: AwsCredentials,
    /// `accept-encoding: identity` on every request (else none):
    /// `disable_accept_encoding=false`.
    pub identity_encoding: bool,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The request names no host.
    #[error("no authority")]
    NoAuthority,
    /// A header value (a session token, the signature) is not valid.
    #[error("invalid header: {0}")]
    Header(#[from] http::header::InvalidHeaderValue),
    /// The request time cannot be written as SigV4 writes it.
    #[error("cannot write the request time {at}: {source}")]
    Time {
        /// The time.
        at: OffsetDateTime,
        /// Why.
        source: time::error::Format,
    },
}

impl S3Signing {
    /// Whether a request to `authority` goes to this endpoint.
    pub fn covers(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        authority == self.authority || authority == format!("{}.{}", self.bucket, self.authority)
    }

    /// Signs `request` now: sets `host`, `x-amz-date`,
    /// `x-amz-content-sha256` (`UNSIGNED-PAYLOAD`), the session token if
    /// any, and `authorization`.
    pub fn sign<B>(&self, request: &mut http::Request<B>) -> Result<(), SignError> {
        self.sign_at(request, OffsetDateTime::now_utc(), UNSIGNED_PAYLOAD)
    }

    fn sign_at<B>(
        &self,
        request: &mut http::Request<B>,
        at: OffsetDateTime,
        payload_hash: &str,
    ) -> Result<(), SignError> {
        let bad = SignError::Header;
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or(SignError::NoAuthority)?;
        let stamp = amz_date(at)?;
        let headers = request.headers_mut();
        headers.insert(HOST, HeaderValue::from_str(&authority).map_err(bad)?);
        headers.insert("x-amz-date", HeaderValue::from_str(&stamp).map_err(bad)?);
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(payload_hash).map_err(bad)?,
        );
        if self.identity_encoding {
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        } else {
            headers.remove(ACCEPT_ENCODING);
        }
        if let Some(token) = &self.credentials.session_token {
            let mut value = HeaderValue::from_str(token).map_err(bad)?;
            value.set_sensitive(true);
            headers.insert("x-amz-security-token", value);
        }
        let mut signed: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                matches!(n, "host" | "content-md5" | "range" | "accept-encoding")
                    || n.starts_with("x-amz-")
            })
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                (name.as_str().to_string(), value)
            })
            .collect();
        signed.sort();
        let names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
        let names = names.join(";");
        let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let path = match request.uri().path() {
            "" => "/",
            p => p,
        };
        let canonical = format!(
            "{}\n{path}\n{}\n{canonical_headers}\n{names}\n{payload_hash}",
            request.method().as_str(),
            canonical_query(request.uri().query().unwrap_or("")),
        );
        let date = &stamp[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let secret = format!("AWS4{}", self.credentials.secret_access_key);
        let mut key = hmac_sha256(secret.as_bytes(), date.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            self.credentials.access_key_id
        );
        let mut value = HeaderValue::from_str(&value).map_err(bad)?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }
}

/// The query's `name=value` pairs sorted (already URI-encoded by the
/// sender); a name without a value gets an empty one.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.contains('=') {
                p.to_string()
            } else {
                format!("{p}=")
            }
        })
        .collect();
    pairs.sort();
    pairs.join("&")
}

/// HMAC-SHA256 (RFC 2104) of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4's date and time: `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC).
const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `at` as SigV4 writes it ([`AMZ_DATE`]), in UTC.
fn amz_date(at: OffsetDateTime) -> Result<String, SignError> {
    at.to_offset(time::UtcOffset::UTC)
        .format(AMZ_DATE)
        .map_err(|source| SignError::Time { at, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn dates_in_amz_format() {
        let at = |secs| amz_date(OffsetDateTime::from_unix_timestamp(secs).unwrap()).unwrap();
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_369_353_600), "20130524T000000Z");
        assert_eq!(at(951_782_399), "20000228T235959Z");
        assert_eq!(at(951_868_800), "20000301T000000Z");
        let paris = time::macros::datetime!(2013-05-24 02:00:00 +02:00);
        assert_eq!(amz_date(paris).unwrap(), "20130524T000000Z");
    }

    #[test]
    fn signs_the_documented_get_object_example() {
        // AWS's "GET Object" example of header-based SigV4 for S3.
        let signing = S3Signing {
            authority: "s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            credentials: AwsCredentials {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
                source: "test".into(),
            },
            identity_encoding: false,
            retry: RetryPolicy::default(),
        };
        let mut request = http::Request::get("https://examplebucket.s3.amazonaws.com/test.txt")
            .header("range", "bytes=0-9")
            .body(())
            .unwrap();
        assert!(signing.covers("examplebucket.s3.amazonaws.com"));
        assert!(!signing.covers("other.example.com"));
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let at = OffsetDateTime::from_unix_timestamp(1_369_353_600).unwrap();
        signing.sign_at(&mut request, at, empty).unwrap();
        assert_eq!(
            request.headers()[AUTHORIZATION],
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }
}
