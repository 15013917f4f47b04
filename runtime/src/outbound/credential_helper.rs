//! Docker credential helpers, run by the host as the docker CLI runs them.
//!
//! A docker config naming `credHelpers` (per registry) or a `credsStore`
//! (every registry) keeps its secrets in a program `docker-credential-NAME`
//! on `PATH`: `docker-credential-NAME get` reads a server URL on its
//! standard input and prints `{"ServerURL": …, "Username": …, "Secret": …}`,
//! or exits non-zero printing why (`credentials not found in native
//! keychain` when it has none for that server). A `Username` of `<token>`
//! means `Secret` is an identity token (an OAuth2 refresh token), exchanged
//! at the registry's token realm.
//!
//! The helper runs outside the sandbox (it is the user's own program, named
//! by the user's own config) with the host's environment, closed after
//! [`HELPER_TIME`] and cut off past [`HELPER_OUTPUT_BYTES`] of output; what
//! it printed reaches an error message on one line, control characters
//! escaped.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::sandbox::text::{one_line, truncate};

/// Longest a helper may run.
pub const HELPER_TIME: Duration = Duration::from_secs(60);

/// Most bytes read from a helper's standard output (and, separately, its
/// standard error).
pub const HELPER_OUTPUT_BYTES: u64 = 64 << 10;

/// What a helper printed that is shown in an error, at most.
const SHOWN_BYTES: usize = 400;

/// The server URL docker passes to helpers for Docker Hub.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Why a helper gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// No such program on `PATH`, or it could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// `docker-credential-NAME`.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran longer than it may ([`HELPER_TIME`]).
    #[error("{program} get did not finish within {} s", time.as_secs_f32())]
    TimedOut {
        /// `docker-credential-NAME`.
        program: String,
        /// How long it had.
        time: Duration,
    },
    /// It printed more than [`HELPER_OUTPUT_BYTES`].
    #[error("{program} get printed more than {HELPER_OUTPUT_BYTES} bytes")]
    TooMuchOutput {
        /// `docker-credential-NAME`.
        program: String,
    },
    /// Talking to it failed.
    #[error("{program} get: {source}")]
    Io {
        /// `docker-credential-NAME`.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited non-zero.
    #[error("{program} get failed ({status}): {printed}")]
    Failed {
        /// `docker-credential-NAME`.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed (stdout, else stderr), on one line, shortened.
        printed: String,
    },
    /// Its answer is not the helper protocol's JSON.
    #[error("{program} get answered something other than {{\"Username\",\"Secret\"}}: {source}")]
    Answer {
        /// `docker-credential-NAME`.
        program: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A helper's answer.
#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The user name and secret `docker-credential-NAME` keeps for `registry`
/// (`host[:port]`, Docker Hub as `docker.io`); `None` when it says it has
/// none.
pub async fn get(name: &str, registry: &str) -> Result<Option<(String, String)>, HelperError> {
    let server = if registry == outport_oci::reference::DOCKER_HUB {
        DOCKER_HUB_SERVER
    } else {
        registry
    };
    run(&format!("docker-credential-{name}"), server, HELPER_TIME).await
}

/// Runs `program get` with `server` on its standard input, for at most
/// `time`.
async fn run(
    program: &str,
    server: &str,
    time: Duration,
) -> Result<Option<(String, String)>, HelperError> {
    let program = program.to_string();
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HelperError::Spawn {
            program: program.clone(),
            source,
        })?;
    let io = |source| HelperError::Io {
        program: program.clone(),
        source,
    };
    let talk = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that does not read its input closes the pipe: its
            // answer still counts.
            match stdin.write_all(server.as_bytes()).await {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(io(e)),
                _ => drop(stdin),
            }
        }
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (out, err) = tokio::try_join!(bounded(stdout), bounded(stderr)).map_err(io)?;
        let (Some(out), Some(err)) = (out, err) else {
            // Dropping the child kills it.
            return Err(HelperError::TooMuchOutput {
                program: program.clone(),
            });
        };
        let status = child.wait().await.map_err(io)?;
        Ok((status, out, err))
    };
    let (status, out, err) =
        tokio::time::timeout(time, talk)
            .await
            .map_err(|_| HelperError::TimedOut {
                program: program.clone(),
                time,
            })??;
    answer(program, status, &out, &err)
}

/// What a helper's exit status and output say.
fn answer(
    program: String,
    status: std::process::ExitStatus,
    out: &[u8],
    err: &[u8],
) -> Result<Option<(String, String)>, HelperError> {
    let out = String::from_utf8_lossy(out);
    if !status.success() {
        if out.trim() == "credentials not found in native keychain" {
            return Ok(None);
        }
        let printed = if out.trim().is_empty() {
            String::from_utf8_lossy(err).into_owned()
        } else {
            out.into_owned()
        };
        let printed = one_line(truncate(printed.trim(), SHOWN_BYTES)).into_owned();
        return Err(HelperError::Failed {
            program,
            status,
            printed,
        });
    }
    let answer: Answer =
        serde_json::from_str(&out).map_err(|source| HelperError::Answer { program, source })?;
    Ok((!answer.secret.is_empty()).then_some((answer.username, answer.secret)))
}

/// All of `stream`, or `None` past [`HELPER_OUTPUT_BYTES`].
async fn bounded(stream: Option<impl AsyncRead + Unpin>) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    if let Some(stream) = stream {
        stream
            .take(HELPER_OUTPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .await?;
    }
    Ok((bytes.len() as u64 <= HELPER_OUTPUT_BYTES).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable shell script `name` in `dir` running `body`.
    fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    async fn ask(program: &str, server: &str) -> Result<Option<(String, String)>, HelperError> {
        run(program, server, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn helpers_answer_refuse_or_fail() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Answers with the server URL it read, so the test sees it was sent.
        let good = script(
            d,
            "good",
            r#"read -r url; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s3cret"}' "$url" "$url""#,
        );
        assert_eq!(
            ask(&good, "r.example.com:5000").await.unwrap(),
            Some(("u-r.example.com:5000".into(), "s3cret".into()))
        );
        let none = script(
            d,
            "none",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        assert_eq!(ask(&none, "r").await.unwrap(), None);
        let empty = script(d, "empty", r#"echo '{"Username":"","Secret":""}'"#);
        assert_eq!(ask(&empty, "r").await.unwrap(), None);

        let failing = script(
            d,
            "failing",
            "printf 'no keyring\\n\\033[31mlocked' >&2; exit 3",
        );
        let e = ask(&failing, "r").await.unwrap_err().to_string();
        assert!(
            e.contains("failing get failed") && e.contains("exit status: 3"),
            "{e}"
        );
        assert!(e.contains(r"no keyring\n\u{1b}[31mlocked"), "{e}");
        let garbage = script(d, "garbage", "echo hello");
        let e = ask(&garbage, "r").await.unwrap_err().to_string();
        assert!(e.contains("answered something other than"), "{e}");
        let flood = script(d, "flood", "yes flood");
        let e = ask(&flood, "r").await.unwrap_err().to_string();
        assert!(e.contains("printed more than 65536 bytes"), "{e}");
        let slow = script(d, "slow", "sleep 30");
        let e = run(&slow, "r", Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not finish within 0.3 s"), "{e}");
        let e = ask(&d.join("missing").to_string_lossy(), "r")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot run") && e.contains("missing"), "{e}");
    }
}
