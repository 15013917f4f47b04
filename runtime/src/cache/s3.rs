//! The host's side of the built-in `s3` cache backend: from the instance's
//! options, the hosts it may reach and how its requests are signed.
//!
//! The endpoint is `endpoint_url` when given (`http://127.0.0.1:9000`),
//! else `s3.REGION.amazonaws.com`; the backend may reach it and, for
//! virtual-hosted-style requests, `BUCKET.` it, nothing else. Requests to
//! it are signed with the credentials of [`AwsCredentials::load`], ask for
//! `accept-encoding: identity` unless `disable_accept_encoding=true`, and
//! are retried as `retry_mode` and `retry_max_attempts` say
//! ([`RetryPolicy`]).

use crate::error::Error;
use crate::outbound::aws_credentials::AwsCredentials;
use crate::outbound::retry::RetryPolicy;
use crate::outbound::sigv4::S3Signing;
use crate::sandbox::allow_list::AllowList;

/// The `type=` name of the built-in S3 cache backend.
pub const NAME: &str = "s3";

/// The allow-list and signing of an `s3` instance with `options`; `what`
/// names it in errors.
pub fn network(what: &str, options: &[(String, String)]) -> Result<(AllowList, S3Signing), Error> {
    let get = |key: &str| {
        options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let bucket = get("bucket")
        .ok_or_else(|| Error::Usage(format!("{what}: type=s3 needs bucket=NAME")))?
        .to_ascii_lowercase();
    let region = get("region")
        .ok_or_else(|| Error::Usage(format!("{what}: type=s3 needs region=NAME")))?
        .to_string();
    let authority = match get("endpoint_url") {
        Some(url) => endpoint_authority(url).ok_or_else(|| {
            Error::Usage(format!(
                "{what}: endpoint_url={url:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            ))
        })?,
        None => format!("s3.{region}.amazonaws.com"),
    };
    let virtual_host = format!("{bucket}.{authority}");
    let allowed = AllowList::parse(&[authority.as_str(), virtual_host.as_str()])
        .or_else(|_| AllowList::parse(&[authority.as_str()]))
        .map_err(|e| Error::Usage(format!("{what}: endpoint: {e}")))?;
    let retry = RetryPolicy::from_options(get).map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    let identity_encoding = match get("disable_accept_encoding") {
        None | Some("false") => true,
        Some("true") => false,
        Some(other) => {
            return Err(Error::Usage(format!(
                "{what}: disable_accept_encoding={other:?}: expected true or false"
            )));
        }
    };
    let credentials = AwsCredentials::load().map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    Ok((
        allowed,
        S3Signing {
            authority,
            bucket,
            region,
            credentials,
            identity_encoding,
            retry,
        },
    ))
}

/// `host[:port]` of an `http://` or `https://` URL without a path (a
/// trailing `/` aside), lower-cased.
fn endpoint_authority(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let ok = !authority.is_empty() && !authority.contains(['/', '?', '#', '@']);
    ok.then(|| authority.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            endpoint_authority("http://127.0.0.1:9000/").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(
            endpoint_authority("https://S3.example.com").as_deref(),
            Some("s3.example.com")
        );
        for bad in ["ftp://x", "http://", "http://x/path", "http://u@x"] {
            assert_eq!(endpoint_authority(bad), None, "{bad}");
        }
    }
}
