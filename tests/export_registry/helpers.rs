//! Docker credential helpers (`credHelpers`, `credsStore`) run by the host
//! for a push to the basic-auth registry: small helper scripts of the
//! test's own on `PATH`, one that answers, one that fails, one that has
//! nothing; each writes down the server URL it was asked for.

use std::path::{Path, PathBuf};

use super::*;

/// A directory of helper scripts `docker-credential-outport-{good,bad,none}`
/// for `registry`'s login; each appends the server URL it reads to
/// `asked-NAME` in the same directory.
fn helpers(parent: &Path, user: &str, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = mkdir(parent, "bin");
    let log = |name: &str| {
        format!(
            "read -r url || true\necho \"$url\" >> '{}'\n",
            path_str(&bin.join(format!("asked-{name}")))
        )
    };
    for (name, body) in [
        (
            "good",
            format!(
                r#"printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}' "$url""#
            ),
        ),
        (
            "bad",
            "echo \"keyring locked for $url\"; exit 2".to_string(),
        ),
        (
            "none",
            "echo 'credentials not found in native keychain'; exit 1".to_string(),
        ),
    ] {
        let path = bin.join(format!("docker-credential-outport-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{}{body}\n", log(name))).expect("write helper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod helper");
    }
    bin
}

/// The server URLs helper `name` was asked for.
fn asked(bin: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(bin.join(format!("asked-{name}")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Pushes the sample to `name` with docker config `config` and the helpers
/// of `bin` on `PATH`; the helpers' logs are emptied first.
fn push_with_helpers(dir: &Path, bin: &Path, name: &str, config: &serde_json::Value) -> Run {
    for helper in ["good", "bad", "none"] {
        let _ = std::fs::remove_file(bin.join(format!("asked-{helper}")));
    }
    let config_dir = docker_config(dir, config);
    let path = format!(
        "{}:{}",
        path_str(bin),
        std::env::var("PATH").unwrap_or_default()
    );
    let outputs = [format!(
        "type=registry,name={name},registry.insecure=true,id=push"
    )];
    let (run, _) = push_with_env(
        dir,
        &sample_image(),
        &outputs,
        &[],
        &config_dir,
        &[("PATH", &path)],
    );
    run
}

#[test]
fn helpers_and_stores_give_the_credentials_in_docker_order() {
    let AuthRegistry {
        host,
        user,
        password,
        encoded,
    } = auth_registry();
    let tmp = tempdir();
    let bin = helpers(tmp.path(), &user, &password);
    let name = format!("{host}/{}:helper", unique_repo("helper"));

    // The registry's own helper wins over the store, which is not run.
    let dir = mkdir(tmp.path(), "helper-over-store");
    let run = push_with_helpers(
        &dir,
        &bin,
        &name,
        &serde_json::json!({"credsStore": "outport-bad", "credHelpers": {host.clone(): "outport-good"}}),
    );
    run.assert_success();
    // Run once for the push, with the registry as its server URL.
    assert_eq!(asked(&bin, "good"), vec![host.as_str()]);
    assert!(asked(&bin, "bad").is_empty());
    let everything = format!("{}{}", run.stdout_text(), run.stderr);
    assert!(!everything.contains(&password), "{everything}");

    // A store serves every registry.
    let dir = mkdir(tmp.path(), "store");
    let run = push_with_helpers(
        &dir,
        &bin,
        &name,
        &serde_json::json!({"credsStore": "outport-good"}),
    );
    run.assert_success();
    assert_eq!(asked(&bin, "good"), vec![host.as_str()]);

    // A store with nothing for the registry leaves it to "auths"; a helper
    // for another registry is never run.
    let dir = mkdir(tmp.path(), "store-then-auths");
    let run = push_with_helpers(
        &dir,
        &bin,
        &name,
        &serde_json::json!({
            "credsStore": "outport-none",
            "credHelpers": {"other.example.com": "outport-bad"},
            "auths": {host.clone(): {"auth": encoded}}
        }),
    );
    run.assert_success();
    assert_eq!(asked(&bin, "none"), vec![host.as_str()]);
    assert!(asked(&bin, "bad").is_empty());
}

#[test]
fn a_failing_or_missing_helper_is_one_line_naming_it() {
    let AuthRegistry {
        host,
        user,
        password,
        ..
    } = auth_registry();
    let tmp = tempdir();
    let bin = helpers(tmp.path(), &user, &password);
    let name = format!("{host}/{}:helper", unique_repo("helper-fails"));

    let dir = mkdir(tmp.path(), "bad");
    let run = push_with_helpers(
        &dir,
        &bin,
        &name,
        &serde_json::json!({"credHelpers": {host.clone(): "outport-bad"}}),
    );
    run.assert_code(1);
    run.assert_error(
        &[&host, "docker-credential-outport-bad"],
        &["credHelpers", "keyring locked for"],
    );
    let error = run.error_text();
    assert!(
        error.contains("docker-credential-outport-bad get failed")
            && error.contains(&format!("keyring locked for {host}")),
        "{error}"
    );
    assert_not_pushed(&name);

    let dir = mkdir(tmp.path(), "absent");
    let run = push_with_helpers(
        &dir,
        &bin,
        &name,
        &serde_json::json!({"credsStore": "outport-absent"}),
    );
    run.assert_code(1);
    run.assert_error(
        &[&host, "docker-credential-outport-absent"],
        &["credsStore", "cannot run"],
    );
    assert_not_pushed(&name);
}
