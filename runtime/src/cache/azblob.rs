//! The host's side of the built-in `azblob` cache backend: from the
//! instance's options and BuildKit's environment variables, the account
//! endpoint it may reach, how its requests are authorised, and the options
//! the component gets (every secret taken out).
//!
//! As BuildKit: `account_url` (else `BUILDKIT_AZURE_STORAGE_ACCOUNT_URL`),
//! `account_name` (else `BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME`, else the
//! first path segment of an IP or `localhost` URL, as the emulator is
//! addressed, else the first label of its host), `container` (else
//! `BUILDKIT_AZURE_STORAGE_CONTAINER`), `prefix` (else
//! `BUILDKIT_AZURE_STORAGE_PREFIX`). The key is `secret_access_key`, else
//! `BUILDKIT_AZURE_STORAGE_ACCESS_KEY`; without one, a SAS token in
//! `account_url`'s query is used. The component sees `account_url` without
//! its query and never `secret_access_key`.

use base64::Engine as _;

use crate::error::Error;
use crate::outbound::azure_shared_key::{AzureAuth, AzureSigning};
use crate::sandbox::allow_list::AllowList;

/// The `type=` name of the built-in Azure Blob cache backend.
pub const NAME: &str = "azblob";
/// The option holding the account key (the host's; never passed on).
pub const OPT_KEY: &str = "secret_access_key";
/// BuildKit's environment variable for the account key.
pub const ENV_KEY: &str = "BUILDKIT_AZURE_STORAGE_ACCESS_KEY";
/// BuildKit's environment variable for the account name.
pub const ENV_ACCOUNT: &str = "BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME";
/// BuildKit's environment variable for the account URL.
pub const ENV_URL: &str = "BUILDKIT_AZURE_STORAGE_ACCOUNT_URL";

/// An `account_url` taken apart.
#[derive(Debug, PartialEq, Eq)]
struct AccountUrl {
    /// `http://` or `https://`.
    scheme: &'static str,
    /// `host[:port]`, lower-cased.
    authority: String,
    /// The path (`/devstoreaccount1` for the emulator), no trailing `/`.
    path: String,
    /// The query (a SAS token), without `?`.
    query: String,
}

impl AccountUrl {
    fn parse(url: &str) -> Option<AccountUrl> {
        let (scheme, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => ("https://", rest),
            (None, Some(rest)) => ("http://", rest),
            _ => return None,
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = path.trim_end_matches('/');
        let ok = !authority.is_empty() && !authority.contains('@') && !rest.contains('#');
        ok.then(|| AccountUrl {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path: path.to_owned(),
            query: query.to_owned(),
        })
    }

    /// The account name the URL implies.
    fn account(&self) -> String {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h);
        let ip_style = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok();
        match self.path.trim_start_matches('/').split('/').next() {
            Some(first) if ip_style && !first.is_empty() => first.to_owned(),
            _ => host.split('.').next().unwrap_or_default().to_owned(),
        }
    }
}

/// The allow-list and signing of an `azblob` instance (`what` in errors),
/// reading `options` and the environment; `options` become what the
/// component gets.
pub fn network(
    what: &str,
    options: &mut Vec<(String, String)>,
) -> Result<(AllowList, AzureSigning), Error> {
    network_with(what, options, |name| std::env::var(name).ok())
}

fn network_with(
    what: &str,
    options: &mut Vec<(String, String)>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(AllowList, AzureSigning), Error> {
    let get = |options: &[(String, String)], key: &str, var: &str| {
        options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .or_else(|| env(var).map(|v| v.trim().to_owned()))
            .filter(|v| !v.is_empty())
    };
    let usage = |m: String| Error::Usage(format!("{what}: {m}"));
    let url_text = get(options, "account_url", ENV_URL)
        .ok_or_else(|| usage(format!("type=azblob needs account_url=URL (or {ENV_URL})")))?;
    let url = AccountUrl::parse(&url_text).ok_or_else(|| {
        usage("account_url: expected http(s)://HOST[:PORT][/PATH][?SAS]".to_owned())
    })?;
    let account = get(options, "account_name", ENV_ACCOUNT).unwrap_or_else(|| url.account());
    if account.is_empty() {
        return Err(usage(format!(
            "no account name: give account_name= (or {ENV_ACCOUNT})"
        )));
    }
    let (auth, source) = credentials(options, get(options, OPT_KEY, ENV_KEY), &url, &account)
        .map_err(|e| usage(e.to_string()))?;
    let allowed = AllowList::parse(&[url.authority.as_str()])
        .map_err(|e| usage(format!("account_url: {e}")))?;
    // What the component gets: no key, no SAS token, the rest resolved.
    let container = get(options, "container", "BUILDKIT_AZURE_STORAGE_CONTAINER");
    let prefix = get(options, "prefix", "BUILDKIT_AZURE_STORAGE_PREFIX");
    let resolved = [
        (
            "account_url",
            Some(format!("{}{}{}", url.scheme, url.authority, url.path)),
        ),
        ("account_name", Some(account.clone())),
        ("container", container),
        ("prefix", prefix),
    ];
    options.retain(|(k, _)| k != OPT_KEY && !resolved.iter().any(|(r, _)| r == k));
    for (key, value) in resolved {
        if let Some(value) = value {
            options.push((key.to_owned(), value));
        }
    }
    Ok((
        allowed,
        AzureSigning {
            authority: url.authority,
            account,
            auth,
            source,
        },
    ))
}

/// The account's credentials: `key` (from the option, else the
/// environment) as a Shared Key, else the SAS token of the URL; with where
/// they came from. The error is what is missing or wrong.
fn credentials(
    options: &[(String, String)],
    key: Option<String>,
    url: &AccountUrl,
    account: &str,
) -> Result<(AzureAuth, String), CredentialsError> {
    let from_option = options
        .iter()
        .any(|(k, v)| k == OPT_KEY && !v.trim().is_empty());
    match key {
        Some(key) => {
            let source = if from_option {
                format!("option {OPT_KEY}")
            } else {
                ENV_KEY.to_owned()
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(key.as_bytes())
                .map_err(|_| CredentialsError::NotBase64 {
                    from: source.clone(),
                })?;
            Ok((AzureAuth::SharedKey(decoded), source))
        }
        None if !url.query.is_empty() => Ok((
            AzureAuth::Sas(url.query.clone()),
            "the SAS token of account_url".to_owned(),
        )),
        None => Err(CredentialsError::Missing {
            account: account.to_owned(),
        }),
    }
}

/// Why an account has no usable credentials.
#[derive(Debug, thiserror::Error)]
enum CredentialsError {
    /// The key is not base64.
    #[error("the account key ({from}) is not base64")]
    NotBase64 {
        /// Where it came from (not the key).
        from: String,
    },
    /// Neither a key nor a SAS token.
    #[error(
        "no credentials for Azure Storage account {account}: give {OPT_KEY}= (or {ENV_KEY}) or a SAS token in account_url"
    )]
    Missing {
        /// The account.
        account: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn account_urls() {
        let url = AccountUrl::parse("http://127.0.0.1:10000/devstoreaccount1/?sv=1&sig=x").unwrap();
        assert_eq!(url.authority, "127.0.0.1:10000");
        assert_eq!(url.path, "/devstoreaccount1");
        assert_eq!(url.query, "sv=1&sig=x");
        assert_eq!(url.account(), "devstoreaccount1");
        let cloud = AccountUrl::parse("https://MyAccount.blob.core.windows.net").unwrap();
        assert_eq!(cloud.account(), "myaccount");
        for bad in [
            "ftp://x",
            "http://",
            "http://u@x/",
            "x.blob.core.windows.net",
        ] {
            assert_eq!(AccountUrl::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_key_is_taken_out_and_the_rest_resolved() {
        let mut options = opts(&[
            (
                "account_url",
                "http://127.0.0.1:10000/devstoreaccount1?sv=1&sig=s3cr3t",
            ),
            ("secret_access_key", "a2V5"),
            ("name", "a;b"),
        ]);
        let env = |name: &str| (name == "BUILDKIT_AZURE_STORAGE_CONTAINER").then(|| "c".to_owned());
        let (allowed, signing) = network_with("cache x", &mut options, env).unwrap();
        assert!(allowed.allows("127.0.0.1", 10000) && !allowed.allows("127.0.0.1", 10001));
        assert_eq!(signing.auth, AzureAuth::SharedKey(b"key".to_vec()));
        assert_eq!(signing.source, "option secret_access_key");
        assert_eq!(
            options,
            opts(&[
                ("name", "a;b"),
                ("account_url", "http://127.0.0.1:10000/devstoreaccount1"),
                ("account_name", "devstoreaccount1"),
                ("container", "c"),
            ])
        );
    }

    #[test]
    fn a_sas_token_or_the_environment_instead_of_the_option() {
        let mut options = opts(&[("account_url", "https://acct.blob.core.windows.net/?sig=t")]);
        let (_, signing) = network_with("cache x", &mut options, |_| None).unwrap();
        assert_eq!(signing.auth, AzureAuth::Sas("sig=t".into()));
        assert_eq!(signing.account, "acct");
        let mut options = opts(&[("account_url", "https://acct.blob.core.windows.net")]);
        let env = |name: &str| match name {
            ENV_KEY => Some("a2V5".to_owned()),
            ENV_ACCOUNT => Some("other".to_owned()),
            _ => None,
        };
        let (_, signing) = network_with("cache x", &mut options, env).unwrap();
        assert_eq!(signing.source, ENV_KEY);
        assert_eq!(signing.account, "other");
    }

    #[test]
    fn refusals_name_the_instance_and_never_the_key() {
        let err = |pairs: &[(&str, &str)]| {
            network_with("cache x", &mut opts(pairs), |_| None)
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[]).contains("cache x: type=azblob needs account_url"));
        assert!(err(&[("account_url", "ftp://x")]).contains("expected http(s)"));
        let no_key = err(&[("account_url", "http://127.0.0.1:1/acct")]);
        assert!(
            no_key.contains("no credentials") && no_key.contains("acct"),
            "{no_key}"
        );
        let bad = err(&[
            ("account_url", "http://127.0.0.1:1/acct"),
            ("secret_access_key", "not base64 ?!"),
        ]);
        assert!(bad.contains("not base64") && !bad.contains("?!"), "{bad}");
    }
}
