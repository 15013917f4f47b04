//! The test registries and what the tests ask of them: a unique
//! repository, a docker config, pushes, what a push uploaded, a policy
//! naming the registry, skopeo over plain HTTP.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

use crate::common::*;

/// `host:port` of a test registry from `var`; fails (never skips) when
/// `scripts/test` did not start it.
#[track_caller]
pub(crate) fn registry(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: the registry tests need the registries scripts/test starts; run scripts/test")
    })
}

/// The registry that asks for basic auth, as `scripts/test` started it.
pub(crate) struct AuthRegistry {
    /// `127.0.0.1:PORT`.
    pub(crate) host: String,
    pub(crate) user: String,
    pub(crate) password: String,
    /// `user:password` in base64, as a docker config's `auth` holds it.
    pub(crate) encoded: String,
}

/// The basic-auth registry and its credentials.
pub(crate) fn auth_registry() -> AuthRegistry {
    let user = registry("OUTPORT_TEST_REGISTRY_USER");
    let password = registry("OUTPORT_TEST_REGISTRY_PASSWORD");
    AuthRegistry {
        host: registry("OUTPORT_TEST_REGISTRY_AUTH"),
        encoded: base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")),
        user,
        password,
    }
}

/// A repository name no other test (or run) uses.
pub(crate) fn unique_repo(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("outport-test/{test}-{}-{nanos}", std::process::id())
}

/// A docker config directory holding `config` as `config.json`.
pub(crate) fn docker_config(parent: &Path, config: &Value) -> std::path::PathBuf {
    let dir = mkdir(parent, "docker-config");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config.json");
    dir
}

/// `outport export INPUT --output SPEC... --progress plain [EXTRA...]` with
/// `DOCKER_CONFIG` set to `config_dir` (never the user's).
pub(super) fn push(
    tmp: &Path,
    input: &Path,
    outputs: &[String],
    extra: &[&str],
    config_dir: &Path,
) -> (Run, Value) {
    push_with_env(tmp, input, outputs, extra, config_dir, &[])
}

/// [`push`] with more environment variables.
pub(super) fn push_with_env(
    tmp: &Path,
    input: &Path,
    outputs: &[String],
    extra: &[&str],
    config_dir: &Path,
    env: &[(&str, &str)],
) -> (Run, Value) {
    let metadata = tmp.join(format!("metadata-{}.json", outputs.len()));
    let mut args: Vec<String> = vec!["export".into(), path_str(input).into()];
    for spec in outputs {
        args.push("--output".into());
        args.push(spec.clone());
    }
    args.extend(
        [
            "--progress",
            "plain",
            "--metadata-file",
            path_str(&metadata),
        ]
        .map(String::from),
    );
    args.extend(extra.iter().map(|s| s.to_string()));
    let cache = tempdir();
    let run = outport_with_cache(
        &args,
        cache.path(),
        &[&[("DOCKER_CONFIG", path_str(config_dir))], env].concat(),
    );
    let meta = if metadata.exists() {
        assert_metadata_valid(&metadata);
        read_json(&metadata)
    } else {
        Value::Null
    };
    (run, meta)
}

/// The number in "N blobs uploaded" of instance `id`'s log line.
#[track_caller]
pub(super) fn uploaded(run: &Run, id: &str) -> usize {
    let text = format!("{}{}", run.stdout_text(), run.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("[{id}] pushed ")))
        .unwrap_or_else(|| panic!("no push log line of {id}\n{}", run.describe()));
    let before = line.split(" blobs uploaded").next().unwrap_or_default();
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// A policy file `dir/file` giving `registry` the `network-hosts` `hosts`
/// (TOML list items, e.g. `"127.0.0.1"`).
pub(crate) fn registry_policy(dir: &Path, file: &str, hosts: &str) -> std::path::PathBuf {
    let policy = dir.join(file);
    std::fs::write(
        &policy,
        format!("[components.registry]\nnetwork-hosts = [{hosts}]\n"),
    )
    .expect("write the policy");
    policy
}

/// `skopeo` with `--tls-verify=false` after its subcommand.
pub(crate) fn skopeo_insecure(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.insert(1, "--tls-verify=false");
    skopeo(&all)
}

/// Asserts the registry has nothing under `reference`.
#[track_caller]
pub(crate) fn assert_not_pushed(reference: &str) {
    let inspect = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{reference}"),
        ],
    );
    assert!(
        !inspect.status.success(),
        "{reference} exists in the registry"
    );
}

/// sha256 of what the registry serves for `reference` (its raw manifest).
pub(super) fn pushed_digest(reference: &str) -> String {
    let raw = skopeo_insecure(&["inspect", "--raw", &format!("docker://{reference}")]);
    sha256_digest(raw.as_bytes())
}
