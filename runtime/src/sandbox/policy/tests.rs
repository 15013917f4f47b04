//! The policy's unit tests.

use super::*;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn no_policy_is_the_default_limits() {
    let p = Policy::parse("").unwrap();
    assert!(p.allows_unpinned());
    let l = p.limits_for(&Limits::default(), "oci", DIGEST);
    assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
    assert_eq!(l.destination, DestinationRule::Any);
}

#[test]
fn digest_overrides_name_overrides_defaults() {
    let text = format!(
        "allow-unpinned = false\n[limits]\nmemory-bytes = 100\noutput-bytes = 5\n\
         [components.misbehave.limits]\nmemory-bytes = 200\n\
         [components.\"{DIGEST}\"]\ndestination = \"file\"\nnetwork-hosts = [\"*.example.com\"]\n\
         [components.\"{DIGEST}\".limits]\nmemory-bytes = 300\n"
    );
    let p = Policy::parse(&text).unwrap();
    assert!(!p.allows_unpinned());
    assert!(p.is_pinned(DIGEST));
    let l = p.limits_for(&Limits::default(), "misbehave", DIGEST);
    assert_eq!((l.memory_bytes, l.output_bytes), (300, 5));
    assert_eq!(l.destination, DestinationRule::File);
    let other = p.limits_for(&Limits::default(), "misbehave", "sha256:x");
    assert_eq!(other.memory_bytes, 200);
    let shown = Policy::parse(&p.effective(&Limits::default()).to_toml()).unwrap();
    assert_eq!(shown.limits.output_bytes, Some(5));
}

#[test]
fn keys_and_network_hosts_are_parsed_once_when_the_policy_is_read() {
    let upper = format!("sha256:{}", DIGEST["sha256:".len()..].to_uppercase());
    let e = Policy::parse(&format!(
        "[components.\"{upper}\".limits]\nmemory-bytes = 1\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("line 1: "), "{e}");
    assert!(e.contains(&format!("components.\"{upper}\"")), "{e}");
    assert!(e.contains("in lowercase"), "{e}");

    let p = Policy::parse(&format!(
        "[components.oci]\n[components.\"{DIGEST}\"]\n\
         network-hosts = [\"Registry.Example.com:5000\"]\nimports = [\"wasi:sockets\"]\n"
    ))
    .unwrap();
    let keys: Vec<&ComponentKey> = p.components.keys().collect();
    assert!(matches!(
        keys[..],
        [ComponentKey::Name(_), ComponentKey::Digest(_)]
    ));
    let list = p.network_for("oci", DIGEST).unwrap();
    assert!(list.allows("registry.example.com", 5000));
    assert!(!list.allows("registry.example.com", 443));
    assert!(p.network_for("oci", "sha256:other").is_none());
    assert!(p.is_pinned(DIGEST) && !p.is_pinned("oci"));
    assert_eq!(p.imports_for("x", DIGEST), ["wasi:sockets"]);
    // Printed back as written.
    assert!(
        p.to_toml()
            .contains("network-hosts = [\"Registry.Example.com:5000\"]"),
        "{}",
        p.to_toml()
    );
}

#[test]
fn unknown_keys_and_bad_values_are_refused_in_one_line() {
    for (text, needle) in [
        ("memory = 1\n", "memory"),
        ("[limits]\nmemroy-bytes = 1\n", "memroy-bytes"),
        ("[components.oci]\nfoo = 1\n", "foo"),
        ("[components.\"sha256:12\"]\n", "64 hex"),
        ("[components.x]\nnetwork-hosts = [\"a b\"]\n", "not a host"),
        ("[components.x]\ndestination = \"pipe\"\n", "pipe"),
        (
            "[limits]\nmemory-bytes = 4294967296\n",
            "limits.memory-bytes = 4294967296 is more than the engine supports (at most 1073741824)",
        ),
        (
            "[components.oci.limits]\ntable-elements = 20001\n",
            "components.\"oci\".limits.table-elements = 20001 is more than the engine supports (at most 20000)",
        ),
        ("[limits]\ninstances = 17\n", "limits.instances = 17"),
        (
            "[limits]\ntimeout-seconds = 18446744073709551615\n",
            "timeout-seconds = 18446744073709551615 is more than the longest",
        ),
        (
            "[components.x.limits]\ncompile-timeout-seconds = 315360001\n",
            "compile-timeout-seconds = 315360001",
        ),
    ] {
        let e = Policy::parse(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
