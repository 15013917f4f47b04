//! Which hosts an instance may reach through `wasi:http`.
//!
//! An [`AllowList`] is a list of host rules: `registry.example.com` (any
//! port), `registry.example.com:5000` (that port only), `*.example.org`
//! (any subdomain). An empty list allows nothing: the default for every
//! component. The policy's `network-hosts` give a component its list; the
//! built-in `registry` exporter without one may reach exactly the
//! registries named in its `name=` options ([`AllowList::for_image_names`]).

use std::fmt;

use outport_oci::reference;

/// One allowed host, optionally with a port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostRule {
    /// Lower-case host; `*.` prefix for subdomains.
    host: String,
    port: Option<u16>,
}

/// An allow-list entry that is not `host`, `host:port` or `*.domain`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a host name")]
pub struct NotAHost(pub String);

/// A registry (`host[:port]`) the allow-list does not let through.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub String);

/// The hosts an instance may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<HostRule>,
}

impl AllowList {
    /// Parses rules as the policy writes them; the error names the bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, NotAHost> {
        let rules = entries
            .iter()
            .map(|e| parse_rule(e.as_ref()).ok_or_else(|| NotAHost(e.as_ref().to_string())))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { rules })
    }

    /// Exactly the registries of `names` (image references such as
    /// `127.0.0.1:5000/app:1` or `alpine`), with their ports.
    pub fn for_image_names<S: AsRef<str>>(names: &[S]) -> AllowList {
        let mut list = AllowList::default();
        for name in names {
            let (host, port) = split_authority(&registry_of(name.as_ref()));
            let rule = HostRule {
                host: host.to_ascii_lowercase(),
                port,
            };
            if !list.rules.contains(&rule) {
                list.rules.push(rule);
            }
        }
        list
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `host` on `port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.rules.iter().any(|rule| {
            let host_ok = match rule.host.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => rule.host == host,
            };
            host_ok && rule.port.is_none_or(|p| p == port)
        })
    }

    /// Whether every registry of `names` is allowed; the first that is not
    /// otherwise.
    pub fn check_image_names<S: AsRef<str>>(&self, names: &[S]) -> Result<(), NotAllowed> {
        for name in names {
            let registry = registry_of(name.as_ref());
            let (host, port) = split_authority(&registry);
            if !self.allows(&host, port.unwrap_or(443)) {
                return Err(NotAllowed(registry));
            }
        }
        Ok(())
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .rules
            .iter()
            .map(|r| match r.port {
                Some(p) => format!("{}:{p}", r.host),
                None => r.host.clone(),
            })
            .collect();
        write!(f, "{}", shown.join(", "))
    }
}

/// `host[:port]` with a DNS-style host (labels of letters, digits and inner
/// hyphens; a first label `*`), or `None`.
fn parse_rule(entry: &str) -> Option<HostRule> {
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok()?)),
        None => (entry, None),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .enumerate()
            .all(|(i, label)| valid_label(label) || (i == 0 && label == "*"));
    valid.then(|| HostRule {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A DNS label: letters, digits and inner hyphens, 1 to 63 characters.
fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The registry (`host[:port]`) of an image reference, as docker reads it
/// ([`reference::split`]): the first path component when it has a `.` or
/// `:` or is `localhost`, else Docker Hub, whose API is
/// `registry-1.docker.io`. Nothing else of the name is checked.
pub fn registry_of(name: &str) -> String {
    reference::registry_host(reference::split(name).domain).to_string()
}

/// `host` and its port, if any (`[::1]:5000` → `::1`, 5000).
fn split_authority(authority: &str) -> (String, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (
            host.to_string(),
            after.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => (host.to_string(), Some(port)),
            Err(_) => (authority.to_string(), None),
        },
        None => (authority.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_host_wildcard_and_port() {
        let list =
            AllowList::parse(&["registry.example.com", "*.example.org", "127.0.0.1:5000"]).unwrap();
        assert!(list.allows("Registry.Example.com", 443));
        assert!(list.allows("a.b.example.org", 80));
        assert!(!list.allows("example.org", 80));
        assert!(!list.allows("badexample.org", 80));
        assert!(list.allows("127.0.0.1", 5000));
        assert!(!list.allows("127.0.0.1", 5001));
        assert!(!list.allows("evil.com", 443));
        assert!(AllowList::default().is_empty());
        assert!(!AllowList::default().allows("localhost", 80));
        for bad in ["a b", "", "x:port", "-a.com", "a.*.com"] {
            assert!(
                AllowList::parse(&[bad])
                    .unwrap_err()
                    .to_string()
                    .contains("not a host"),
                "{bad}"
            );
        }
    }

    #[test]
    fn registries_of_image_names() {
        let list = AllowList::for_image_names(&[
            "127.0.0.1:5000/app:1",
            "localhost/x",
            "alpine",
            "ghcr.io/o/r@sha256:00",
        ]);
        assert_eq!(
            list.to_string(),
            "127.0.0.1:5000, localhost, registry-1.docker.io, ghcr.io"
        );
        assert!(list.allows("127.0.0.1", 5000) && !list.allows("127.0.0.1", 5001));
        assert_eq!(list.check_image_names(&["ghcr.io/a/b"]), Ok(()));
        assert_eq!(
            AllowList::parse(&["ghcr.io"])
                .unwrap()
                .check_image_names(&["ghcr.io/a", "quay.io/b"]),
            Err(NotAllowed("quay.io".to_string()))
        );
    }
}
