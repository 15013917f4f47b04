//! Registry credentials from a docker `config.json`, held by the host.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//! Its `auths` map registry hosts (`registry.example.com`,
//! `https://index.docker.io/v1/`, `127.0.0.1:5000`) to either a base64
//! `auth` (`user:password`) or a `username` and `password`. Credential
//! stores and helpers (`credsStore`, `credHelpers`) run programs outside the
//! sandbox and are not supported: looking up a registry they would serve is
//! a clear error instead of a silent anonymous request.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use outport_oci::reference;
use serde::Deserialize;

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
    /// The registry's credentials live in a store or helper outport does not run.
    #[error(
        "{path}: credentials for {registry} are kept by {what}, which outport does not run; add an \"auths\" entry with \"auth\" or \"username\"/\"password\" for {registry}"
    )]
    Unsupported {
        /// The config file.
        path: String,
        /// The registry asked for.
        registry: String,
        /// `credsStore "NAME"` or `credHelpers "NAME"`.
        what: String,
    },
}

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
    /// The `Authorization: Basic …` value.
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The credentials of one docker config file.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    path: String,
    logins: HashMap<String, Login>,
    store: Option<String>,
    helpers: HashMap<String, String>,
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
            let login = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => decode_auth(&auth).ok_or_else(|| {
                    invalid(format!("auths.{key:?}.auth is not base64 of user:password"))
                })?,
                (_, Some(username), Some(password)) => Login { username, password },
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
        })
    }

    /// The login for `registry` (`host[:port]`), if the file has one.
    /// Fails when a credential helper or store would have to be run.
    pub fn lookup(&self, registry: &str) -> Result<Option<&Login>, CredentialsError> {
        let registry = normalize_registry(registry);
        let unsupported = |what: String| CredentialsError::Unsupported {
            path: self.path.clone(),
            registry: registry.clone(),
            what,
        };
        if let Some(helper) = self.helpers.get(&registry) {
            return Err(unsupported(format!("credHelpers {helper:?}")));
        }
        if let Some(login) = self.logins.get(&registry) {
            return Ok(Some(login));
        }
        match &self.store {
            Some(store) => Err(unsupported(format!("credsStore {store:?}"))),
            None => Ok(None),
        }
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

    #[test]
    fn auth_and_username_password_entries() {
        // "alice:s3cr:et" — a password may hold colons.
        let text = r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcjpldA=="},
            "127.0.0.1:5000": {"username": "bob", "password": "pw"},
            "http://registry.example.com/v2/": {"auth": "Ym9iOnB3"},
            "empty.example.com": {}
        }}"#;
        let c = Credentials::parse(text, "config.json").unwrap();
        assert_eq!(
            c.lookup("registry-1.docker.io").unwrap(),
            Some(&login("alice", "s3cr:et"))
        );
        assert_eq!(
            c.lookup("127.0.0.1:5000").unwrap(),
            Some(&login("bob", "pw"))
        );
        assert_eq!(
            c.lookup("Registry.Example.com").unwrap(),
            Some(&login("bob", "pw"))
        );
        assert_eq!(c.lookup("empty.example.com").unwrap(), None);
        assert_eq!(c.lookup("127.0.0.1:5001").unwrap(), None);
        assert_eq!(login("bob", "pw").basic(), "Basic Ym9iOnB3");
        assert!(!format!("{c:?}").contains("s3cr"));
    }

    #[test]
    fn stores_and_helpers_are_clear_errors() {
        let text = r#"{"auths": {"a.example.com": {"auth": "Ym9iOnB3"}},
            "credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}}"#;
        let c = Credentials::parse(text, "/x/config.json").unwrap();
        assert!(c.lookup("a.example.com").unwrap().is_some());
        let e = c.lookup("gcr.io").unwrap_err().to_string();
        assert!(
            e.contains("credHelpers \"gcloud\"") && e.contains("gcr.io"),
            "{e}"
        );
        let e = c.lookup("b.example.com").unwrap_err().to_string();
        assert!(
            e.contains("credsStore \"desktop\"") && e.starts_with("/x/config.json"),
            "{e}"
        );
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

    #[test]
    fn a_missing_file_is_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::load_file(&dir.path().join("config.json")).unwrap();
        assert_eq!(c.lookup("example.com").unwrap(), None);
    }
}
