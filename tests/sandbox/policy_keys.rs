//! The policy's keys are parsed once, when it is read: a digest key is a
//! sha256 digest in lowercase or a usage error naming the file and the key
//! (never an entry that silently matches nothing), and each
//! `network-hosts` list is an allow-list or a usage error, before anything
//! runs.

use std::fs;

use super::{Work, policy_cmd};
use crate::common::*;

/// The misbehave component's digest, as `outport inspect` prints it.
fn misbehave_digest() -> String {
    sha256_digest(&fs::read(outport_test_programs::MISBEHAVE).unwrap())
}

/// `digest` with its hex digits in upper case.
fn upper_case(digest: &str) -> String {
    format!("sha256:{}", digest_hex(digest).to_uppercase())
}

#[test]
fn a_digest_key_in_upper_case_is_a_usage_error_naming_file_and_key() {
    let work = Work::new();
    let key = upper_case(&misbehave_digest());
    let policy = work.policy(&format!(
        "[components.\"{key}\".limits]\noutput-bytes = 1048576\n"
    ));
    for run in [
        policy_cmd(&["show", "--policy", path_str(&policy)]),
        work.refused_with(&["--policy", path_str(&policy)]),
    ] {
        run.assert_code(2);
        let error = run.error_text();
        assert_eq!(error.lines().count(), 1, "{}", run.describe());
        assert!(error.contains("policy.toml"), "{error}");
        assert!(error.contains(&format!("components.\"{key}\"")), "{error}");
        assert!(error.contains("in lowercase"), "{error}");
    }
}

#[test]
fn a_digest_entry_s_stricter_limits_apply_over_its_name_entry() {
    Work::new().fails(
        "flood",
        &format!(
            "[components.outport_test_misbehave.limits]\noutput-bytes = 1073741824\n\
             [components.\"{}\".limits]\noutput-bytes = 1048576\n",
            misbehave_digest()
        ),
        "output limit of 1048576 bytes exceeded",
    );
}

#[test]
fn a_bad_network_host_is_a_usage_error_before_anything_runs() {
    let work = Work::new();
    let policy = work.policy(
        "[components.outport_test_misbehave]\n\
         network-hosts = [\"registry.example.com\", \"a b\"]\n",
    );
    let run = work.refused_with(&["--policy", path_str(&policy)]);
    let error = run.error_text();
    assert_eq!(error.lines().count(), 1, "{}", run.describe());
    for part in [
        "policy.toml",
        "line 2",
        "network-hosts",
        "\"a b\" is not a host name",
    ] {
        assert!(error.contains(part), "{part:?} missing: {error}");
    }
}

#[test]
fn policy_show_prints_network_hosts_and_keys_as_written() {
    let work = Work::new();
    let digest = misbehave_digest();
    let policy = work.policy(&format!(
        "[components.\"{digest}\"]\nnetwork-hosts = [\"Registry.Example.com:5000\", \"*.example.org\"]\n"
    ));
    let run = policy_cmd(&["show", "--policy", path_str(&policy)]);
    run.assert_success();
    let text = run.stdout_text();
    for line in [
        format!("[components.\"{digest}\"]"),
        "network-hosts = [\"Registry.Example.com:5000\", \"*.example.org\"]".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} missing:\n{text}");
    }
}
