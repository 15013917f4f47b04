//! AWS credentials for the `s3` cache backend, held by the host: from the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//! `AWS_SESSION_TOKEN`), else from the shared credentials file
//! (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), profile
//! `AWS_PROFILE` or `default`. Components never see them: the host signs
//! their requests (see [`crate::outbound::sigv4`]).

use std::fmt;
use std::path::PathBuf;

/// Why AWS credentials could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum AwsCredentialsError {
    /// Neither the environment nor the file has them.
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile [{profile}] to {file}"
    )]
    Missing {
        /// The profile looked for.
        profile: String,
        /// The shared credentials file looked in.
        file: String,
    },
    /// The file exists but cannot be read, or its profile lacks a key.
    #[error("{file}: {message}")]
    Invalid {
        /// The shared credentials file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// An access key, its secret and an optional session token. `Debug` hides
/// the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`, for temporary credentials.
    pub session_token: Option<String>,
    /// Where they came from (`environment` or the file and profile), for
    /// error messages.
    pub source: String,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl AwsCredentials {
    /// The credentials of the environment, else of the shared file.
    pub fn load() -> Result<AwsCredentials, AwsCredentialsError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
                source: "the environment (AWS_ACCESS_KEY_ID)".to_string(),
            });
        }
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))
            .unwrap_or_else(|| PathBuf::from(".aws/credentials"));
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_string());
        let shown = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => AwsCredentials::parse_file(&text, &shown, &profile),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(AwsCredentialsError::Missing {
                    profile,
                    file: shown,
                })
            }
            Err(e) => Err(AwsCredentialsError::Invalid {
                file: shown,
                message: format!("cannot read: {e}"),
            }),
        }
    }

    /// Profile `profile` of a shared credentials file's text (INI: `[name]`
    /// sections of `key = value` lines, `#` and `;` comments); `file`
    /// names it in errors.
    pub fn parse_file(
        text: &str,
        file: &str,
        profile: &str,
    ) -> Result<AwsCredentials, AwsCredentialsError> {
        let mut section = None;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = Some(name.trim().to_string());
                continue;
            }
            if section.as_deref() != Some(profile) {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = Some(value.trim().to_string());
            match key.trim() {
                "aws_access_key_id" => id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(AwsCredentials {
                access_key_id,
                secret_access_key,
                session_token: token,
                source: format!("{file} [{profile}]"),
            }),
            (None, None) => Err(AwsCredentialsError::Missing {
                profile: profile.to_string(),
                file: file.to_string(),
            }),
            _ => Err(AwsCredentialsError::Invalid {
                file: file.to_string(),
                message: format!(
                    "profile [{profile}] needs both aws_access_key_id and aws_secret_access_key"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n[default]\naws_access_key_id = AKID\naws_secret_access_key=SECRET\n\n[other]\naws_access_key_id = O\naws_secret_access_key = OS\naws_session_token = T\n[half]\naws_access_key_id = H\n";

    #[test]
    fn profiles_of_the_shared_file() {
        let d = AwsCredentials::parse_file(FILE, "creds", "default").unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("AKID", "SECRET")
        );
        assert_eq!(d.session_token, None);
        let o = AwsCredentials::parse_file(FILE, "creds", "other").unwrap();
        assert_eq!(o.session_token.as_deref(), Some("T"));
        assert!(!format!("{o:?}").contains("OS"));
        let e = AwsCredentials::parse_file(FILE, "creds", "half").unwrap_err();
        assert!(e.to_string().contains("[half] needs both"), "{e}");
        let e = AwsCredentials::parse_file(FILE, "creds", "none").unwrap_err();
        assert!(matches!(e, AwsCredentialsError::Missing { .. }), "{e}");
    }
}
