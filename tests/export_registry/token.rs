//! The token-auth registry (`docker-registry` with `auth: token`, its
//! tokens issued by `scripts/token-server`): the sample pushed to it and
//! pulled back from it (`docker://`) with basic credentials from `auths`
//! (a `GET` to the realm) and with an identity token from a credential
//! helper (the OAuth2 refresh-token grant, a `POST`); a failing helper and
//! a wrong password are one line each, with nothing pushed or written; a
//! push of an image pulled from there mounts its blobs with one token
//! for both repositories.

use std::path::{Path, PathBuf};

use super::*;
use crate::input_registry::push_sample_as;

/// The token registry, its login, the identity token its token server
/// accepts and that server's log.
struct TokenRegistry {
    host: String,
    user: String,
    password: String,
    refresh: String,
    log: PathBuf,
}

fn token_registry() -> TokenRegistry {
    TokenRegistry {
        host: registry("OUTPORT_TEST_TOKEN_REGISTRY"),
        user: registry("OUTPORT_TEST_REGISTRY_USER"),
        password: registry("OUTPORT_TEST_REGISTRY_PASSWORD"),
        refresh: registry("OUTPORT_TEST_TOKEN_REFRESH"),
        log: PathBuf::from(registry("OUTPORT_TEST_TOKEN_LOG")),
    }
}

impl TokenRegistry {
    /// `user:password` in base64, as `auths` holds it.
    fn encoded(&self, password: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", self.user))
    }

    /// The token server's log lines about `repo` (`METHOD grant=… user=…
    /// scope=… status=…`).
    fn grants(&self, repo: &str) -> Vec<String> {
        let scope = format!("repository:{repo}:");
        std::fs::read_to_string(&self.log)
            .expect("read the token server's log")
            .lines()
            .filter(|l| l.contains(&scope))
            .map(str::to_owned)
            .collect()
    }

    /// sha256 of the manifest the registry serves for `reference`, read
    /// with the login; `None` when there is none.
    fn pushed(&self, reference: &str) -> Option<String> {
        let out = tool(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("--creds={}:{}", self.user, self.password),
                &format!("docker://{reference}"),
            ],
        );
        out.status.success().then(|| sha256_digest(&out.stdout))
    }
}

/// `docker-credential-NAME` in `bin`, a script with `body`.
fn helper(bin: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\nread -r url || true\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A run and its metadata (`Null` when it wrote none).
type Ran = (Run, Value);

/// Pushes the sample to `name`, then pulls it back (`docker://`) into an
/// OCI tarball (instance `pulled`), both with docker config `config` and
/// `bin` first on `PATH`: the two runs and the tarball's path.
fn push_and_pull(dir: &Path, name: &str, config: &Value, bin: &Path) -> (Ran, Ran, PathBuf) {
    let config_dir = docker_config(dir, config);
    let path = format!(
        "{}:{}",
        path_str(bin),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path.as_str())];
    let outputs = [format!(
        "type=registry,name={name},registry.insecure=true,id=push"
    )];
    let (pushed, meta) = push_with_env(dir, &sample_image(), &outputs, &[], &config_dir, &env);
    let dest = dir.join("pulled.tar");
    let metadata = dir.join("pulled.json");
    let args = [
        "export".to_owned(),
        format!("docker://{name}"),
        "--src-insecure".into(),
        "--output".into(),
        format!("type=oci,dest={},id=pulled", path_str(&dest)),
        "--metadata-file".into(),
        path_str(&metadata).into(),
    ];
    let cache = mkdir(dir, "cache");
    let pulled = outport_with_cache(
        &args,
        &cache,
        &[("DOCKER_CONFIG", path_str(&config_dir)), env[0]],
    );
    let pulled_meta = if metadata.exists() {
        read_json(&metadata)
    } else {
        Value::Null
    };
    ((pushed, meta), (pulled, pulled_meta), dest)
}

/// The root digest instance `id` reports in `meta`.
fn root(meta: &Value, id: &str) -> String {
    str_at(
        &exporter_entry(meta, id)["response"],
        "containerimage.digest",
    )
    .to_owned()
}

#[test]
fn basic_credentials_and_an_identity_token_push_and_pull() {
    let registry = token_registry();
    let tmp = tempdir();
    let bin = mkdir(tmp.path(), "bin");
    helper(
        &bin,
        "outport-identity",
        &format!(
            r#"printf '{{"ServerURL":"%s","Username":"<token>","Secret":"{}"}}' "$url""#,
            registry.refresh
        ),
    );
    let cases = [
        (
            "basic",
            serde_json::json!({"auths": {registry.host.clone(): {"auth": registry.encoded(&registry.password)}}}),
            "GET grant=basic",
        ),
        (
            "identity",
            serde_json::json!({"credHelpers": {registry.host.clone(): "outport-identity"}}),
            "POST grant=refresh_token",
        ),
    ];
    for (case, config, flow) in cases {
        let dir = mkdir(tmp.path(), case);
        let repo = unique_repo(&format!("token-{case}"));
        let name = format!("{}/{repo}:1", registry.host);
        let ((pushed, meta), (pulled, pulled_meta), dest) =
            push_and_pull(&dir, &name, &config, &bin);
        pushed.assert_success();
        pulled.assert_success();
        // Every token for the repository came by the case's flow, push
        // (pull,push) and pull alike (read before skopeo asks for one).
        let grants = registry.grants(&repo);
        let digest = root(&meta, "push");
        assert_eq!(registry.pushed(&name).as_deref(), Some(digest.as_str()));
        assert!(dest.exists());
        assert_eq!(root(&pulled_meta, "pulled"), digest, "{case}");
        assert!(
            grants
                .iter()
                .any(|l| l.contains(":pull,push ") || l.contains(":push,pull ")),
            "{case}: {grants:?}"
        );
        assert!(
            !grants.is_empty()
                && grants
                    .iter()
                    .all(|l| l.starts_with(flow) && l.ends_with("status=200")),
            "{case}: {grants:?}"
        );
        let everything = format!("{}{}{}", pushed.stdout_text(), pushed.stderr, pulled.stderr);
        assert!(!everything.contains(&registry.refresh), "{everything}");
    }
}

#[test]
fn a_failing_helper_or_a_wrong_password_is_one_line_and_writes_nothing() {
    let registry = token_registry();
    let tmp = tempdir();
    let bin = mkdir(tmp.path(), "bin");
    helper(
        &bin,
        "outport-locked",
        "echo \"keyring locked for $url\"; exit 3",
    );
    let cases = [
        (
            "helper",
            serde_json::json!({"credHelpers": {registry.host.clone(): "outport-locked"}}),
            vec![
                "docker-credential-outport-locked get failed",
                "keyring locked for",
            ],
        ),
        (
            "password",
            serde_json::json!({"auths": {registry.host.clone(): {"auth": registry.encoded("not-the-password")}}}),
            vec!["cannot get a token", "401 Unauthorized"],
        ),
    ];
    for (case, config, says) in cases {
        let dir = mkdir(tmp.path(), case);
        let repo = unique_repo(&format!("token-fails-{case}"));
        let name = format!("{}/{repo}:1", registry.host);
        let ((pushed, _), (pulled, _), dest) = push_and_pull(&dir, &name, &config, &bin);
        for (what, run) in [("push", &pushed), ("pull", &pulled)] {
            run.assert_code(1);
            let error = run.error_text();
            assert!(
                error.lines().count() == 1
                    && error.contains(&registry.host)
                    && says.iter().all(|s| error.contains(s)),
                "{case} {what}: {error}\n{}",
                run.describe()
            );
        }
        assert_eq!(registry.pushed(&name), None, "{case}: pushed");
        assert!(!dest.exists(), "{case}: the pull wrote its output");
    }
}

#[test]
fn a_push_of_a_pulled_image_mounts_with_one_token_for_both_repositories() {
    let registry = token_registry();
    let tmp = tempdir();
    let source_repo = unique_repo("token-mount-source");
    let target_repo = unique_repo("token-mount-target");
    let source = format!("{}/{source_repo}:1", registry.host);
    let target = format!("{}/{target_repo}:1", registry.host);
    push_sample_as(
        &source,
        Some(&format!("{}:{}", registry.user, registry.password)),
    );
    let config = docker_config(
        tmp.path(),
        &serde_json::json!({"auths": {registry.host.clone(): {"auth": registry.encoded(&registry.password)}}}),
    );
    let metadata = tmp.path().join("metadata.json");
    let args = [
        "export".to_owned(),
        format!("docker://{source}"),
        "--src-insecure".into(),
        "--progress".into(),
        "plain".into(),
        "--output".into(),
        format!("type=registry,name={target},registry.insecure=true,id=push"),
        "--metadata-file".into(),
        path_str(&metadata).into(),
    ];
    let cache = mkdir(tmp.path(), "cache");
    let run = outport_with_cache(&args, &cache, &[("DOCKER_CONFIG", path_str(&config))]);
    run.assert_success();
    let (uploaded, present, mounted) = super::names::counts(&run, &target);
    assert!(
        uploaded == 0 && present == 0 && mounted > 0,
        "{}",
        run.describe()
    );
    // The mounts' token covers pushing to the target and pulling from the
    // source, as the registry's challenge asked.
    let both = registry.grants(&target_repo).into_iter().any(|l| {
        (l.contains(&format!("repository:{target_repo}:pull,push "))
            || l.contains(&format!("repository:{target_repo}:push,pull ")))
            && l.contains(&format!("repository:{source_repo}:pull"))
            && l.ends_with("status=200")
    });
    assert!(both, "{:?}", registry.grants(&target_repo));
    let digest = root(&read_json(&metadata), "push");
    assert_eq!(registry.pushed(&target).as_deref(), Some(digest.as_str()));
}
