//! What `--attest` asked for ([`Request`]) and the statements' timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use super::BUILDER_ID;
use crate::buildinfo::error::{AttestProblem, InputError};

/// How much the provenance says, as BuildKit's `mode=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Frontend and the non-secret-prone request arguments: `build-arg:*`
    /// and `label:*` attributes are left out (BuildKit's default).
    #[default]
    Min,
    /// Every build attribute.
    Max,
}

/// What `--attest` asked for, for the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `mode=`.
    pub mode: Mode,
    /// `builder-id=` (default [`BUILDER_ID`]).
    pub builder_id: String,
    /// `SOURCE_DATE_EPOCH`, when set: every timestamp, and the invocation
    /// ID derives from it, so the same inputs give the same attestations.
    pub source_date_epoch: Option<i64>,
    /// When the run started (seconds since the epoch).
    pub started: i64,
}

impl Request {
    /// Parses the `--attest` values (`provenance`, `type=provenance`,
    /// `mode=min|max`, `builder-id=ID`, `disabled=true|false`, as buildx
    /// takes them) and `SOURCE_DATE_EPOCH`. `None` when nothing is asked.
    /// The error is one line naming the value.
    pub fn from_args(
        attest: &[String],
        source_date_epoch: Option<&str>,
    ) -> Result<Option<Request>, InputError> {
        let mut request: Option<Request> = None;
        let mut seen = false;
        for value in attest {
            let parsed = Request::parse_value(value)?;
            if seen {
                return Err(InputError::Attest {
                    value: value.clone(),
                    problem: AttestProblem::Repeated,
                });
            }
            seen = true;
            if parsed.is_some() {
                request = parsed;
            }
        }
        let Some(mut request) = request else {
            return Ok(None);
        };
        let epoch = parse_epoch(source_date_epoch)?;
        request.source_date_epoch = epoch;
        request.started = epoch.unwrap_or_else(now);
        Ok(Some(request))
    }

    /// Parses one `--attest` value; `None` when it says `disabled=true`.
    /// The timestamps are left for [`Request::from_args`] to set.
    fn parse_value(value: &str) -> Result<Option<Request>, InputError> {
        let bad = |problem| InputError::Attest {
            value: value.to_string(),
            problem,
        };
        let mut kind = None;
        let mut mode = Mode::Min;
        let mut builder_id = BUILDER_ID.to_string();
        let mut disabled = false;
        for field in value.split(',').map(str::trim) {
            let (k, v) = match field.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None if kind.is_none() => ("type", field),
                None => return Err(bad(AttestProblem::NotKeyValue(field.to_string()))),
            };
            match k {
                "type" if kind.is_none() => kind = Some(v.to_string()),
                "mode" => {
                    mode = match v {
                        "min" => Mode::Min,
                        "max" => Mode::Max,
                        _ => return Err(bad(AttestProblem::Mode(v.to_string()))),
                    }
                }
                "builder-id" if !v.is_empty() => builder_id = v.to_string(),
                "disabled" => {
                    disabled = match v {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(bad(AttestProblem::Disabled(v.to_string())));
                        }
                    }
                }
                _ => {
                    return Err(bad(AttestProblem::UnknownField(field.to_string())));
                }
            }
        }
        match kind.as_deref() {
            Some("provenance") => {}
            None | Some("") => return Err(bad(AttestProblem::NoType)),
            Some(other) => {
                return Err(bad(AttestProblem::Unsupported(other.to_string())));
            }
        }
        Ok((!disabled).then_some(Request {
            mode,
            builder_id,
            source_date_epoch: None,
            started: 0,
        }))
    }

    /// The invocation ID shared by every statement of a run: with
    /// `SOURCE_DATE_EPOCH`, derived from it and `inputs` (what the run was
    /// told, credentials stripped), so that attesting an attested image
    /// again with the same inputs gives the same bytes; unique otherwise.
    pub fn invocation_id(&self, inputs: &str) -> String {
        let seed = match self.source_date_epoch {
            Some(epoch) => format!("{epoch} {:?} {} {inputs}", self.mode, self.builder_id),
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                format!("{nanos} {} {inputs}", std::process::id())
            }
        };
        let digest = outport_image::sha256_digest(seed.as_bytes());
        digest.trim_start_matches("sha256:")[..32].to_string()
    }

    /// When the attestations are made.
    pub fn finished(&self) -> i64 {
        self.source_date_epoch.unwrap_or_else(now)
    }
}

/// `SOURCE_DATE_EPOCH`, when set and not empty: seconds since 1970.
fn parse_epoch(source_date_epoch: Option<&str>) -> Result<Option<i64>, InputError> {
    let epoch = match source_date_epoch.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| InputError::Epoch(s.to_string()))?,
        ),
        None => None,
    };
    Ok(epoch)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) for seconds since the epoch,
/// clamped to the years RFC 3339 can write (0000 to 9999).
pub fn rfc3339(secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    const FIRST: i64 = -62_167_219_200;
    const LAST: i64 = 253_402_300_799;
    time::OffsetDateTime::from_unix_timestamp(secs.clamp(FIRST, LAST))
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}
