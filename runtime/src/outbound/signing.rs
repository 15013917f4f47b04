//! The request signing the host does for a networked cache backend: SigV4
//! for an S3 endpoint, Shared Key (or a SAS token) for an Azure Storage
//! account. The component never sees the secret either way.

use crate::outbound::azure_shared_key::{AzureAuth, AzureSigning};
use crate::outbound::retry::RetryPolicy;
use crate::outbound::sigv4::S3Signing;

/// How the host signs one instance's requests to its storage endpoint.
#[derive(Clone, Debug)]
pub enum Signing {
    /// An S3 endpoint (the `s3` cache backend).
    S3(S3Signing),
    /// An Azure Storage account (the `azblob` cache backend).
    Azure(AzureSigning),
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// SigV4 failed.
    #[error(transparent)]
    S3(#[from] crate::outbound::sigv4::SignError),
    /// Shared Key or SAS failed.
    #[error(transparent)]
    Azure(#[from] crate::outbound::azure_shared_key::AzureSignError),
}

impl Signing {
    /// Whether a request to `authority` is signed.
    pub fn covers(&self, authority: &str) -> bool {
        match self {
            Signing::S3(s) => s.covers(authority),
            Signing::Azure(a) => a.covers(authority),
        }
    }

    /// How failed requests are retried: the `s3` backend's
    /// `retry_mode`/`retry_max_attempts`; the defaults for Azure, whose SDK
    /// (and so BuildKit's azblob cache) retries too but takes no option.
    pub fn retry(&self) -> RetryPolicy {
        match self {
            Signing::S3(s) => s.retry,
            Signing::Azure(_) => RetryPolicy::default(),
        }
    }

    /// Signs `request` now.
    pub fn sign<B>(&self, request: &mut http::Request<B>) -> Result<(), SigningError> {
        match self {
            Signing::S3(s) => Ok(s.sign(request)?),
            Signing::Azure(a) => Ok(a.sign(request)?),
        }
    }

    /// What a `401` or `403` from `endpoint` means, naming the key and
    /// where it came from (never the secret).
    pub fn refused(&self, endpoint: &str, status: http::StatusCode) -> String {
        match self {
            Signing::S3(s) => format!(
                "S3 endpoint {endpoint} answered {status}: it refused the credentials (access key {} from {})",
                s.credentials.access_key_id, s.credentials.source
            ),
            Signing::Azure(a) => {
                let what = match a.auth {
                    AzureAuth::SharedKey(_) => "the account key",
                    AzureAuth::Sas(_) => "the SAS token",
                };
                format!(
                    "Azure Storage account {} at {endpoint} answered {status}: it refused {what} (from {})",
                    a.account, a.source
                )
            }
        }
    }
}
