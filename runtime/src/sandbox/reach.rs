//! Which hosts an instance may reach through `wasi:http`, and whose
//! requests the host signs.
//!
//! A component's entry in the policy (`network-hosts`) decides; without
//! one, third-party components reach nothing and each built-in that talks
//! to the network has its own rule ([`Reach`], in [`crate::components::builtin`]'s
//! tables), read from the instance's options by [`network`]. Adding a
//! networked built-in is one [`Reach`] and one arm of [`default_network`].

use crate::cache::{azblob, s3};
use crate::error::Error;
use crate::outbound::signing::Signing;
use crate::sandbox::allow_list::AllowList;

/// What a built-in may reach when the policy does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// Nothing: every component but those below.
    #[default]
    Nothing,
    /// The registries of its `name=` options (the `registry` exporter).
    ImageNames,
    /// The registry of its `ref=` option (the `registry` cache backend).
    CacheRef,
    /// Its S3 endpoint, requests signed by the host (the `s3` cache
    /// backend; see [`s3::network`]).
    S3Endpoint,
    /// Its Azure Storage account endpoint, requests signed by the host (the
    /// `azblob` cache backend; see [`azblob::network`]).
    AzureAccount,
}

/// The network of an instance (`what` names it in errors) of the
/// component the policy calls `policy_name`, with `reach`, the policy's
/// `network-hosts` for it (`configured`) and the instance's `options`.
///
/// A policy list replaces the default, but the registries a `name=` or
/// `ref=` option names must be on it: else a usage error, before anything
/// runs. Secrets the host keeps (the `azblob` key) are taken out of
/// `options`.
pub fn network(
    what: &str,
    (reach, policy_name): (Reach, &str),
    configured: Option<AllowList>,
    options: &mut Vec<(String, String)>,
) -> Result<(AllowList, Option<Signing>), Error> {
    let (default, registries, signing) = default_network(what, reach, options)?;
    let Some(list) = configured else {
        return Ok((default, signing));
    };
    list.check_image_names(&registries).map_err(|registry| {
        Error::Usage(format!(
            "{what}: registry {registry} is not among the network-hosts the policy allows for {policy_name} ({list})"
        ))
    })?;
    Ok((list, signing))
}

/// The default of `reach` for `options`: the hosts, the image references
/// whose registries a policy list must allow, the request signing.
fn default_network(
    what: &str,
    reach: Reach,
    options: &mut Vec<(String, String)>,
) -> Result<(AllowList, Vec<String>, Option<Signing>), Error> {
    let values = |key: &str| -> Vec<String> {
        options
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match reach {
        Reach::Nothing => Ok((AllowList::default(), Vec::new(), None)),
        Reach::ImageNames => {
            let names = values("name");
            Ok((AllowList::for_image_names(&names), names, None))
        }
        Reach::CacheRef => {
            let refs = values("ref");
            if refs.is_empty() {
                return Err(Error::Usage(format!(
                    "{what}: type=registry needs ref=HOST[:PORT]/REPO:TAG"
                )));
            }
            Ok((AllowList::for_image_names(&refs), refs, None))
        }
        Reach::S3Endpoint => {
            let (allowed, signing) = s3::network(what, options)?;
            Ok((allowed, Vec::new(), Some(Signing::S3(signing))))
        }
        Reach::AzureAccount => {
            let (allowed, signing) = azblob::network(what, options)?;
            Ok((allowed, Vec::new(), Some(Signing::Azure(signing))))
        }
    }
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
    fn each_reach_reads_its_options() {
        let (list, s3) = network(
            "output x",
            (Reach::ImageNames, "registry"),
            None,
            &mut opts(&[("name", "127.0.0.1:5000/a:1, ghcr.io/b")]),
        )
        .unwrap();
        assert_eq!(list.to_string(), "127.0.0.1:5000, ghcr.io");
        assert!(s3.is_none());
        let (list, _) = network(
            "cache c",
            (Reach::CacheRef, "registry"),
            None,
            &mut opts(&[("ref", "127.0.0.1:5001/cache:main")]),
        )
        .unwrap();
        assert!(list.allows("127.0.0.1", 5001) && !list.allows("127.0.0.1", 5000));
        let missing = network("cache c", (Reach::CacheRef, "registry"), None, &mut vec![]);
        assert!(
            matches!(missing, Err(Error::Usage(m)) if m.contains("cache c") && m.contains("ref="))
        );
        let (list, _) = network("output y", (Reach::Nothing, "oci"), None, &mut vec![]).unwrap();
        assert!(list.is_empty());
    }

    #[test]
    fn a_policy_list_replaces_the_default_and_must_allow_the_registries() {
        let policy = AllowList::parse(&["127.0.0.1"]).unwrap();
        let mut options = opts(&[("ref", "127.0.0.1:5001/cache:main")]);
        let (list, _) = network(
            "cache c",
            (Reach::CacheRef, "registry"),
            Some(policy.clone()),
            &mut options,
        )
        .unwrap();
        assert_eq!(list, policy);
        let strict = AllowList::parse(&["registry.example.com"]).unwrap();
        let refused = network(
            "cache c",
            (Reach::CacheRef, "registry"),
            Some(strict),
            &mut options,
        );
        assert!(matches!(
            refused,
            Err(Error::Usage(m)) if m.contains("cache c: registry 127.0.0.1:5001") && m.contains("network-hosts")
        ));
        let third_party = AllowList::parse(&["example.org"]).unwrap();
        let (list, _) = network(
            "output z",
            (Reach::Nothing, "mine"),
            Some(third_party.clone()),
            &mut vec![],
        )
        .unwrap();
        assert_eq!(list, third_party);
    }
}
