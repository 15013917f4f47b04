//! Registry credentials from a docker `config.json`, held by the host.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//! Its `auths` map registry hosts (`registry.example.com`,
//! `https://index.docker.io/v1/`, `127.0.0.1:5000`) to either a base64
//! `auth` (`user:password`), a `username` and `password`, or an
//! `identitytoken`. Credential helpers are run as the docker CLI runs them
//! ([`credential_helper`]): a registry named in `credHelpers` asks its
//! helper and nothing else; any other asks the `credsStore` if there is
//! one, then `auths`. A helper is run at most once per registry for one
//! `Credentials` (the answer is kept), and never for a registry it does not
//! serve.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use outport_oci::reference;
use serde::Deserialize;

use super::credential_helper::{self, HelperError};

/// Why credentials could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file exists but cannot be read.
    #[error("{path}: cannot read: {message}")]
    Read {
        /// The config file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The file is not a docker config, or an entry is malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// The config file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The helper or store keeping the registry's credentials failed.
    #[error("{path}: credentials for {registry} from {what}: {source}")]
    Helper {
        /// The config file.
        path: String,
        /// The registry asked for.
        registry: String,
        /// `credsStore "NAME"` or `credHelpers "NAME"`.
        what: String,
        /// How the helper failed.
        #[source]
        source: Box<HelperError>,
    },
}

/// The user name docker's helpers answer when the secret is an identity
/// token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A user name and password for one registry. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Login {
    /// The identity token (an OAuth2 refresh token) this login is, if it is
    /// one (user name `<token>`): it is exchanged at the token realm, never
    /// sent to the registry as basic auth.
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }

    /// The `Authorization: Basic …` value.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The credentials of one docker config file. Clones share what helpers
/// answered.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    path: String,
    logins: HashMap<String, Login>,
    store: Option<String>,
    helpers: HashMap<String, String>,
    /// What a helper or the store answered, by registry.
    asked: Arc<tokio::sync::Mutex<HashMap<String, Option<Login>>>>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Where the docker config is: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

impl Credentials {
    /// Reads the user's docker config ([`config_path`]); no file means no
    /// credentials.
    pub fn load() -> Result<Credentials, CredentialsError> {
        match config_path() {
            Some(path) => Credentials::load_file(&path),
            None => Ok(Credentials::default()),
        }
    }

    /// Reads `path`; a missing file means no credentials.
    pub fn load_file(path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Credentials::parse(&text, &shown),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials {
                path: shown,
                ..Credentials::default()
            }),
            Err(e) => Err(CredentialsError::Read {
                path: shown,
                message: e.to_string(),
            }),
        }
    }

    /// Parses the text of a docker config; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Credentials, CredentialsError> {
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_string(),
            message,
        };
        let file: ConfigFile =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a docker config: {e}")))?;
        let mut logins = HashMap::new();
        for (key, entry) in file.auths {
            let registry = normalize_registry(&key);
            let login = match (
                entry.identitytoken,
                entry.auth,
                entry.username,
                entry.password,
            ) {
                (Some(token), _, _, _) if !token.is_empty() => Login {
                    username: IDENTITY_TOKEN_USER.to_string(),
                    password: token,
                },
                (_, Some(auth), _, _) if !auth.is_empty() => {
                    decode_auth(&auth).ok_or_else(|| {
                        invalid(format!("auths.{key:?}.auth is not base64 of user:password"))
                    })?
                }
                (_, _, Some(username), Some(password)) => Login { username, password },
                // Docker writes empty entries for registries whose
                // credentials are in a store.
                _ => continue,
            };
            logins.insert(registry, login);
        }
        let helpers = file
            .cred_helpers
            .into_iter()
            .map(|(k, v)| (normalize_registry(&k), v))
            .collect();
        Ok(Credentials {
            path: path.to_string(),
            logins,
            store: file.creds_store.filter(|s| !s.is_empty()),
            helpers,
            asked: Arc::default(),
        })
    }

    /// The login for `registry` (`host[:port]`): from its `credHelpers`
    /// helper if it has one, else from the `credsStore` if there is one,
    /// else from `auths`; `None` when nothing has one.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Login>, CredentialsError> {
        let registry = normalize_registry(registry);
        let helper = match (self.helpers.get(&registry), &self.store) {
            (Some(helper), _) => Some((helper, "credHelpers")),
            (None, Some(store)) => Some((store, "credsStore")),
            (None, None) => None,
        };
        let from_file = || self.logins.get(&registry).cloned();
        let Some((name, key)) = helper else {
            return Ok(from_file());
        };
        let mut asked = self.asked.lock().await;
        if let Some(answer) = asked.get(&registry) {
            return Ok(answer.clone());
        }
        let answer = credential_helper::get(name, &registry)
            .await
            .map_err(|source| CredentialsError::Helper {
                path: self.path.clone(),
                registry: registry.clone(),
                what: format!("{key} {name:?}"),
                source: Box::new(source),
            })?
            .map(|(username, password)| Login { username, password });
        // A store with nothing for the registry leaves `auths` to answer (a
        // registry's own helper is its only source).
        let answer = match (answer, key) {
            (None, "credsStore") => from_file(),
            (answer, _) => answer,
        };
        asked.insert(registry, answer.clone());
        Ok(answer)
    }

    /// The config file these credentials come from.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Decodes an `auth` value: base64 of `user:password`.
fn decode_auth(auth: &str) -> Option<Login> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Login {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// A registry as a config key or request authority: scheme and path
/// dropped, Docker Hub's aliases folded into `docker.io`.
pub fn normalize_registry(key: &str) -> String {
    let key = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    if reference::DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        reference::DOCKER_HUB.to_string()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: &str, password: &str) -> Login {
        Login {
            username: user.into(),
            password: password.into(),
        }
    }

    #[tokio::test]
    async fn auth_and_username_password_entries() {
        // "alice:s3cr:et" — a password may hold colons.
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
            "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            "http://registry.example.com/v2/": {"auth": "Ym9iOnB3"},
            "token.example.com": {"identitytoken": "refresh-me"},
            "empty.example.com": {}
        }}"#;
        let c = Credentials::parse(text, "config.json").unwrap();
        let found = async |registry: &str| c.lookup(registry).await.unwrap();
        assert_eq!(
            found("registry-1.docker.io").await,
            Some(login("alice", "s3cr:et"))
        );
        assert_eq!(found("127.0.0.1:5000").await, Some(login("bob", "pw")));
        assert_eq!(
            found("Registry.Example.com").await,
            Some(login("bob", "pw"))
        );
        let token = found("token.example.com").await.unwrap();
        assert_eq!(token.identity_token(), Some("refresh-me"));
        assert_eq!(login("bob", "pw").identity_token(), None);
        assert_eq!(found("empty.example.com").await, None);
        assert_eq!(found("127.0.0.1:5001").await, None);
        assert_eq!(login("bob", "pw").basic(), "Basic Ym9iOnB3");
        assert!(!format!("{c:?}").contains("s3cr"));
    }

    #[tokio::test]
    async fn a_missing_helper_is_a_one_line_error_naming_it() {
        let text = r#"{"auths": {"a.example.com": {"auth": "Ym9iOnB3"}},
            "credHelpers": {"gcr.io": "outport-test-absent"}}"#;
        let c = Credentials::parse(text, "/x/config.json").unwrap();
        // A registry the helper does not serve never runs it.
        assert_eq!(
            c.lookup("a.example.com").await.unwrap(),
            Some(login("bob", "pw"))
        );
        assert_eq!(c.lookup("b.example.com").await.unwrap(), None);
        let e = c.lookup("gcr.io").await.unwrap_err().to_string();
        assert!(
            e.starts_with("/x/config.json: credentials for gcr.io from credHelpers \"outport-test-absent\": cannot run docker-credential-outport-test-absent")
                && !e.contains('\n'),
            "{e}"
        );
        let store = r#"{"credsStore": "outport-test-absent"}"#;
        let c = Credentials::parse(store, "/x/config.json").unwrap();
        let e = c.lookup("b.example.com").await.unwrap_err().to_string();
        assert!(e.contains("from credsStore \"outport-test-absent\""), "{e}");
    }

    #[test]
    fn malformed_files_are_one_line_errors() {
        for (text, needle) in [
            ("not json", "not a docker config"),
            (r#"{"auths": {"h": {"auth": "!!!"}}}"#, "not base64"),
            (
                r#"{"auths": {"h": {"auth": "bm9jb2xvbg=="}}}"#,
                "user:password",
            ),
            (r#"{"auths": []}"#, "not a docker config"),
        ] {
            let e = Credentials::parse(text, "c.json").unwrap_err().to_string();
            assert!(e.contains(needle) && !e.contains('\n'), "{text}: {e}");
        }
    }

    #[tokio::test]
    async fn a_missing_file_is_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::load_file(&dir.path().join("config.json")).unwrap();
        assert_eq!(c.lookup("example.com").await.unwrap(), None);
    }
}
