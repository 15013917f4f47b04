//! The host's side of the built-in `s3` cache backend: from the instance's
//! options, the hosts it may reach and how its requests are signed.
//!
//! The endpoint is `endpoint_url` when given (`http://127.0.0.1:9000`),
//! else `s3.REGION.amazonaws.com`; the backend may reach it and, for
//! virtual-hosted-style requests, `BUCKET.` it, nothing else. Requests to
//! it are signed with the credentials of the options (`access_key_id`,
//! `secret_access_key`, `session_token`, taken out before the component
//! gets the options) or else of [`AwsCredentials::load`], ask for
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

/// The options holding credentials (the host's; never passed on).
pub const CREDENTIAL_OPTIONS: [&str; 3] = ["access_key_id", "secret_access_key", "session_token"];

/// The allow-list and signing of an `s3` instance with `options`; `what`
/// names it in errors. As BuildKit, `bucket` and `region` fall back to
/// `AWS_BUCKET` and `AWS_REGION`, and `access_key_id` with
/// `secret_access_key` (and `session_token`) are used before the
/// environment's credentials; `options` become what the component gets:
/// the bucket and region resolved, no credential.
pub fn network(
    what: &str,
    options: &mut Vec<(String, String)>,
) -> Result<(AllowList, S3Signing), Error> {
    network_with(what, options, |name| std::env::var(name).ok())
}

fn network_with(
    what: &str,
    options: &mut Vec<(String, String)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(AllowList, S3Signing), Error> {
    let usage = |m: String| Error::Usage(format!("{what}: {m}"));
    let option = |options: &[(String, String)], key: &str| {
        options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let from_env = |var: &str| {
        env(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let bucket = option(options, "bucket")
        .or_else(|| from_env("AWS_BUCKET"))
        .ok_or_else(|| usage("type=s3 needs bucket=NAME (or AWS_BUCKET)".to_owned()))?
        .to_ascii_lowercase();
    let region = option(options, "region")
        .or_else(|| from_env("AWS_REGION"))
        .ok_or_else(|| usage("type=s3 needs region=NAME (or AWS_REGION)".to_owned()))?;
    let credentials = credentials(
        option(options, "access_key_id"),
        option(options, "secret_access_key"),
        option(options, "session_token"),
    )
    .map_err(usage)?;
    options.retain(|(k, _)| {
        !CREDENTIAL_OPTIONS.contains(&k.as_str()) && k != "bucket" && k != "region"
    });
    options.push(("bucket".to_owned(), bucket.clone()));
    options.push(("region".to_owned(), region.clone()));
    let get = |key: &str| {
        options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let authority = match get("endpoint_url") {
        Some(url) => endpoint_authority(url).ok_or_else(|| {
            usage(format!(
                "endpoint_url={url:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            ))
        })?,
        None => format!("s3.{region}.amazonaws.com"),
    };
    let virtual_host = format!("{bucket}.{authority}");
    let allowed = AllowList::parse(&[authority.as_str(), virtual_host.as_str()])
        .or_else(|_| AllowList::parse(&[authority.as_str()]))
        .map_err(|e| usage(format!("endpoint: {e}")))?;
    let retry = RetryPolicy::from_options(get).map_err(|e| usage(e.to_string()))?;
    let identity_encoding = match get("disable_accept_encoding") {
        None | Some("false") => true,
        Some("true") => false,
        Some(other) => {
            return Err(usage(format!(
                "disable_accept_encoding={other:?}: expected true or false"
            )));
        }
    };
    let credentials = match credentials {
        Some(given) => given,
        None => AwsCredentials::load().map_err(|e| usage(e.to_string()))?,
    };
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

/// The credentials of the options, if they give them: an access key needs
/// its secret and the other way round.
fn credentials(
    id: Option<String>,
    secret: Option<String>,
    token: Option<String>,
) -> Result<Option<AwsCredentials>, String> {
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(AwsCredentials {
            access_key_id,
            secret_access_key,
            session_token: token,
            source: "the options (access_key_id)".to_owned(),
        })),
        (None, None) if token.is_none() => Ok(None),
        _ => Err(
            "access_key_id= and secret_access_key= go together (session_token= with them)"
                .to_owned(),
        ),
    }
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

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn options_and_environment_as_buildkit_reads_them() {
        let env = |name: &str| match name {
            "AWS_BUCKET" => Some("from-env".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        };
        let mut options = pairs(&[
            ("access_key_id", "AKID"),
            ("secret_access_key", "SECRET"),
            ("session_token", "TOKEN"),
            ("name", "main"),
        ]);
        let (_, signing) = network_with("s3", &mut options, env).unwrap();
        assert_eq!(signing.bucket, "from-env");
        assert_eq!(signing.region, "eu-west-1");
        assert_eq!(signing.authority, "s3.eu-west-1.amazonaws.com");
        assert_eq!(signing.credentials.access_key_id, "AKID");
        assert_eq!(signing.credentials.session_token.as_deref(), Some("TOKEN"));
        assert_eq!(
            options,
            pairs(&[
                ("name", "main"),
                ("bucket", "from-env"),
                ("region", "eu-west-1")
            ])
        );
        let mut half = pairs(&[("bucket", "b"), ("region", "r"), ("access_key_id", "AKID")]);
        let e = network_with("s3", &mut half, |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("go together"), "{e}");
        let e = network_with("s3", &mut pairs(&[("region", "r")]), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("AWS_BUCKET"), "{e}");
    }

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
