//! Retries of the requests the host sends to a cache backend's storage
//! endpoint, with the meaning of the AWS SDK's retry settings that
//! BuildKit's s3 cache passes on (`retry_mode`, `retry_max_attempts`).
//!
//! A request is tried at most `max_attempts` times (the SDK's default: 3)
//! when it fails with a `5xx` or `429` answer or no answer at all (refused,
//! dropped or timed-out connection). Before each retry the host waits a
//! random time below `2^attempt` seconds, at most 20 s (the SDK's "standard"
//! exponential backoff with full jitter). `adaptive` adds the SDK's idea of
//! client-side rate limiting in its simplest form: after a throttling answer
//! (`429`, `503`), every new request of the instance waits out the same
//! backoff first. Only requests the host can send again are retried: see
//! [`crate::host::http`].

use std::time::Duration;

/// The SDK's default number of attempts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// The option naming the mode.
pub const OPT_MODE: &str = "retry_mode";
/// The option naming the number of attempts.
pub const OPT_MAX_ATTEMPTS: &str = "retry_max_attempts";

/// `retry_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// Retries with exponential backoff.
    #[default]
    Standard,
    /// Standard, and a throttling answer slows every request down.
    Adaptive,
}

/// How one instance's requests to its storage endpoint are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The mode.
    pub mode: RetryMode,
    /// Attempts per request, the first one included (at least 1).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            mode: RetryMode::Standard,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// A retry option with a value it cannot take.
#[derive(Debug, thiserror::Error)]
pub enum RetryOptionError {
    /// `retry_mode` is neither `standard` nor `adaptive`.
    #[error("{OPT_MODE}={0:?}: expected \"standard\" or \"adaptive\"")]
    Mode(String),
    /// `retry_max_attempts` is not a positive integer.
    #[error("{OPT_MAX_ATTEMPTS}={0:?}: expected a positive integer")]
    MaxAttempts(String),
}

impl RetryPolicy {
    /// The policy of `retry_mode` and `retry_max_attempts` (`get` reads an
    /// option; absent ones take the defaults).
    pub fn from_options<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<RetryPolicy, RetryOptionError> {
        let mode = match get(OPT_MODE) {
            None | Some("standard") => RetryMode::Standard,
            Some("adaptive") => RetryMode::Adaptive,
            Some(other) => return Err(RetryOptionError::Mode(other.to_owned())),
        };
        let max_attempts = match get(OPT_MAX_ATTEMPTS) {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| RetryOptionError::MaxAttempts(text.to_owned()))?,
        };
        Ok(RetryPolicy { mode, max_attempts })
    }

    /// Whether an answer with `status` is worth another attempt.
    pub fn retries_status(status: http::StatusCode) -> bool {
        status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
    }

    /// Whether an answer with `status` asks the client to slow down.
    pub fn is_throttling(status: http::StatusCode) -> bool {
        status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::SERVICE_UNAVAILABLE
    }

    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1 failed):
    /// a random time below `min(2^attempt s, 20 s)`.
    pub fn backoff(attempt: u32) -> Duration {
        let ceiling = 1u64
            .checked_shl(attempt.min(16))
            .map_or(MAX_BACKOFF, Duration::from_secs)
            .min(MAX_BACKOFF);
        ceiling.mul_f64(jitter())
    }
}

/// A random fraction in `[0, 1)`; the middle when no randomness can be had
/// (a wait is still bounded).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> Result<RetryPolicy, RetryOptionError> {
        RetryPolicy::from_options(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
    }

    #[test]
    fn options_as_buildkit_reads_them() {
        assert_eq!(policy(&[]).unwrap(), RetryPolicy::default());
        let p = policy(&[("retry_mode", "adaptive"), ("retry_max_attempts", "7")]).unwrap();
        assert_eq!((p.mode, p.max_attempts), (RetryMode::Adaptive, 7));
        for bad in [("retry_mode", "legacy"), ("retry_max_attempts", "0")] {
            let e = policy(&[bad]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{}=\"{}\"", bad.0, bad.1)), "{e}");
        }
        assert!(policy(&[("retry_max_attempts", "-1")]).is_err());
    }

    #[test]
    fn what_is_retried_and_how_long_it_waits() {
        use http::StatusCode;
        for s in [500, 502, 503, 504, 429] {
            assert!(RetryPolicy::retries_status(
                StatusCode::from_u16(s).unwrap()
            ));
        }
        for s in [200, 400, 403, 404, 409] {
            assert!(!RetryPolicy::retries_status(
                StatusCode::from_u16(s).unwrap()
            ));
        }
        for attempt in 1..40 {
            let wait = RetryPolicy::backoff(attempt);
            let ceiling = Duration::from_secs(1 << attempt.min(5)).min(MAX_BACKOFF);
            assert!(wait < ceiling, "{attempt}: {wait:?}");
        }
    }
}
