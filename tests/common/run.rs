//! Running outport: the [`Run`] type, the command lines and metadata
//! file checks.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::json::array_at;
use super::paths::{path_str, repo_root, tempdir};
use super::tools::tool;

/// What a run of `outport` did.
pub struct Run {
    pub args: Vec<OsString>,
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The command line and its output, for assertion messages.
    pub fn describe(&self) -> String {
        let mut stdout = self.stdout_text();
        if stdout.len() > 4000 {
            let mut cut = 4000;
            while !stdout.is_char_boundary(cut) {
                cut -= 1;
            }
            stdout.truncate(cut);
            stdout.push_str("\n[... stdout cut ...]");
        }
        format!(
            "command: outport {:?}\nexit code: {:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n---",
            self.args, self.code, self.stderr
        )
    }

    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "outport failed\n{}", self.describe());
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
    }

    /// stderr from its first line that starts with `error:` to its end (an
    /// error may continue on following lines, e.g. its causes).
    #[track_caller]
    pub fn error_text(&self) -> String {
        let stderr = strip_ansi(&self.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let first = lines
            .iter()
            .position(|line| line.starts_with("error:"))
            .unwrap_or_else(|| {
                panic!(
                    "no line starting with \"error:\" on stderr\n{}",
                    self.describe()
                )
            });
        lines[first..].join("\n")
    }

    /// Asserts that stderr has an `error:` line and that the error names one
    /// of `mentions` (a file, a digest, an option; case-insensitive) and says
    /// one of `words` (what is wrong).
    #[track_caller]
    pub fn assert_error(&self, mentions: &[&str], words: &[&str]) {
        let text = self.error_text().to_lowercase();
        assert!(
            mentions.iter().any(|m| text.contains(&m.to_lowercase())),
            "the error should mention one of {mentions:?}\n{}",
            self.describe()
        );
        assert!(
            words.iter().any(|w| text.contains(&w.to_lowercase())),
            "the error should say one of {words:?}\n{}",
            self.describe()
        );
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the `outport` binary with `args` and a fresh, empty component cache
/// (`--cache-dir`, also as `OUTPORT_CACHE_DIR`), so no test depends on or
/// writes to the user's cache. Standard input is closed.
pub fn outport<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cache = tempdir();
    outport_with_cache(args, cache.path(), &[])
}

/// Runs the `outport` CLI with the compile cache in `cache` and extra
/// environment variables.
pub fn outport_with_cache<I, S>(args: I, cache: &Path, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args
        .into_iter()
        .map(|arg| arg.as_ref().to_os_string())
        .collect();
    run_outport(args, |command| {
        command
            .arg("--cache-dir")
            .arg(cache)
            .env("OUTPORT_CACHE_DIR", cache)
            .envs(env.iter().copied());
    })
}

/// Runs the `outport` binary with `args`, then whatever `setup` adds
/// (arguments, environment); standard input is closed. No default plugin
/// directory (`OUTPORT_PLUGIN_DIR` empty) unless `setup` sets one, so the
/// user's plugins never count.
pub fn run_outport(args: Vec<OsString>, setup: impl FnOnce(&mut Command)) -> Run {
    run_command(Command::new(env!("CARGO_BIN_EXE_outport")), args, setup)
}

/// Runs `outport ARGS` like [`outport`] (fresh cache) under GNU time, and
/// returns the run with the process's peak resident set size, in bytes.
pub fn outport_peak_rss(args: Vec<OsString>) -> (Run, u64) {
    let tmp = tempdir();
    let report = tmp.path().join("rss");
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_outport"));
    let run = run_command(command, args, |command| {
        command.arg("--cache-dir").arg(tmp.path().join("cache"));
    });
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!("GNU time wrote no report ({e}); run scripts/install-test-deps")
    });
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time report {text:?}"));
    (run, kib * 1024)
}

/// Runs `command` with `args`, then whatever `setup` adds; standard input
/// is closed.
pub fn run_command(
    mut command: Command,
    args: Vec<OsString>,
    setup: impl FnOnce(&mut Command),
) -> Run {
    command
        .args(&args)
        .stdin(Stdio::null())
        .env("OUTPORT_PLUGIN_DIR", "");
    setup(&mut command);
    let output = command.output().expect("run the outport binary");
    Run {
        args,
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `outport export INPUT --output SPEC... [--metadata-file FILE]`.
pub fn export(input: &OsStr, outputs: &[String], metadata: Option<&Path>) -> Run {
    let mut args: Vec<OsString> = vec!["export".into(), input.to_os_string()];
    for spec in outputs {
        args.push("--output".into());
        args.push(spec.into());
    }
    if let Some(file) = metadata {
        args.push("--metadata-file".into());
        args.push(file.as_os_str().to_os_string());
    }
    outport(args)
}

/// `INPUT:REF` as one argument.
pub fn with_ref(input: &Path, reference: &str) -> OsString {
    let mut arg = input.as_os_str().to_os_string();
    arg.push(":");
    arg.push(reference);
    arg
}

/// Checks a metadata file against `schemas/metadata.schema.json` with
/// Python's `jsonschema` (installed by `scripts/install-test-deps`).
#[track_caller]
pub fn assert_metadata_valid(file: &Path) {
    let schema = repo_root().join("schemas/metadata.schema.json");
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        doc = json.load(open(sys.argv[2]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))\n\
        [print(f'{list(e.absolute_path)}: {e.message}') for e in errors]\n\
        sys.exit(1 if errors else 0)\n";
    let out = tool(
        "python3",
        &["-c", script, path_str(&schema), path_str(file)],
    );
    assert!(
        out.status.success(),
        "{} does not match the schema:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry of instance `id` in a metadata file's `exporters` list.
#[track_caller]
pub fn exporter_entry<'a>(metadata: &'a Value, id: &str) -> &'a Value {
    array_at(metadata, "exporters")
        .iter()
        .find(|entry| entry["id"] == id)
        .unwrap_or_else(|| panic!("no exporter with id {id:?} in the metadata file: {metadata:#}"))
}
