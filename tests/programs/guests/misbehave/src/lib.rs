//! A test exporter, built on the SDK, whose `export` does what its `action`
//! option says:
//!
//! - `ok`: writes `out.txt` (or the granted file) and answers `test.ok=ID`;
//! - `error`: writes a partial file, then returns an `io` error;
//! - `panic`: writes a partial file, then panics (a trap);
//! - `loop`: spins forever (stopped by the time limit);
//! - `grow-memory`: allocates until the memory limit stops it;
//! - `print`: writes lines to stdout and stderr, then succeeds;
//! - `duplicate-key`: answers the same response key twice;
//! - `put-blob-flood`: creates distinct 8 MiB blobs until the host refuses;
//! - `flood`: writes 8 MiB to its destination itself (`wasi:filesystem`);
//! - `escape`: tries to reach outside its destination (`/etc/passwd`, `/x`,
//!   `../x`, a symlink to `../sentinel` and a write through it, the same
//!   paths and the symlink itself through `blob.write-files`); answers
//!   `test.refused.WHAT=ERROR` for each refused attempt, and fails
//!   `escaped: ...` if any succeeded;
//! - `resource-bomb`: holds ever more blob handles and input-streams;
//! - `stack-overflow`: recurses without end;
//! - `response-entries`, `response-values`, `response-key`: answer two
//!   million empty entries, 16 values of 2 MiB, or one 4 MiB key;
//! - `invalid-utf8`: answers a value that is not UTF-8;
//! - `bogus-calls`: passes malformed digests and media types, and byte
//!   ranges past a blob's end, to the host; answers `test.refused.WHAT=ERROR` for each refused call, and fails
//!   `accepted: ...` if any was accepted;
//! - `ignore-damaged-copy`, `ignore-damaged-read`: copies every layer into
//!   its file (`copy-to-file`) or reads it (`blob.read`), ignoring every
//!   error, then writes its file and succeeds;
//! - `log-flood`: calls `log` and `progress` 200000 times each, then succeeds;
//! - `ambient`: answers `test.env`, `test.args` and `test.stdin` with the
//!   environment variables and arguments it sees and the bytes (or the
//!   error) reading stdin gives, then succeeds.
//!
//! - `symlink-output`: makes its output file a symlink to
//!   `../sentinel/keep.txt` (beside the destination) and succeeds;
//! - `sleep`: waits in a host call (a clock) for an hour;
//! - `forge-log`: logs and prints lines with newlines and escape sequences
//!   that would forge another instance's error line and set the terminal
//!   title, then fails with such a message;
//! - `deep-dirs`: creates 16,000 nested directories, then fails;
//! - `convert-bomb`, `convert-bomb-gzip`: `put-blob`s an 8 MiB gzip layer
//!   that decompresses to 8 GiB of zeros and asks the host to convert it to
//!   an uncompressed layer (or to gzip it again with its file times
//!   clamped);
//! - `convert-zstd-22`: asks the host to convert the image's layers to
//!   zstd level 22;
//! - `forge-response`: succeeds answering a `containerimage.digest` with a
//!   newline, a forged summary line and escape sequences;
//! - `fd-hog`: opens up to 9,900 files in its destination directory and
//!   holds them for 3 s, then fails saying how many it held;
//! - `first-view-only`: asks for the uncompressed view of every layer,
//!   reads the first one only (logging `first view read: N bytes`), then
//!   writes its file and succeeds;
//! - `view-streams`: opens input-streams on the last layer's view, reading
//!   a megabyte of each, until one is refused or 16 are open, then drops
//!   them and opens one more (`views.rs`);
//! - `copy-ranges`: asks `copy-ranges` for ranges it must refuse, then
//!   copies the last layer's view whole into its file (`views.rs`);
//! - `docker-then-sleep`, `docker-then-error`, `docker-rewrite`: write a
//!   docker tarball named `name=`, wait `pause=` seconds (default 3), then
//!   succeed, fail, or write the right tag over bytes written before and
//!   succeed (see `docker.rs`).
//!
//! `output=file|directory|none` (default `file`) is what `validate` asks for.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::write::GzEncoder;
use outport_exporter::bindings::outport::exporter::image::{
    BlobRange, Compression, ConvertOptions, NewFile,
};

use outport_exporter::bindings::wasi::filesystem::types::{
    Descriptor, DescriptorFlags, OpenFlags, PathFlags,
};
use outport_exporter::bindings::wasi::io::streams::StreamError;

use outport_exporter::{
    ComponentInfo, Destination, Error, Guest, OptionSpec, Options, OutputKind, Parsed, Request,
    ResponseEntry, dest, export, image, log, options, walk,
};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once(
        "action",
        "ok, error, panic, loop, grow-memory, print, duplicate-key, put-blob-flood, flood, escape, \
         resource-bomb, stack-overflow, response-entries, response-values, response-key, \
         invalid-utf8, bogus-calls, ignore-damaged-copy, ignore-damaged-read, log-flood, ambient, \
         symlink-output, sleep, forge-log, deep-dirs, convert-bomb, convert-bomb-gzip, \
         convert-zstd-22, fd-hog, forge-response, first-view-only, view-streams, copy-ranges, \
         docker-then-sleep, docker-then-error, docker-rewrite",
    )
    .default("ok"),
    OptionSpec::once("output", "file, directory or none").default("file"),
    OptionSpec::once("name", "the docker tarball's image name (docker-* actions)")
        .default("outport-test/misbehave:1"),
    OptionSpec::once("pause", "seconds the docker-* actions wait after writing").default("3"),
];

mod actions;
mod docker;
mod views;

use actions::*;
use views::*;

struct Misbehave;

/// Writes `data` to the destination: the granted file, or `out.txt` in a
/// granted directory.
fn write_output(destination: &Destination, data: &[u8]) -> Result<(), Error> {
    let dir = dest::preopen(&destination.preopen)?;
    let name = destination.file.as_deref().unwrap_or("out.txt");
    dest::write_file(&dir, name, data)
}

fn entry(key: &str, value: &str) -> ResponseEntry {
    ResponseEntry {
        key: key.into(),
        value: value.into(),
    }
}

impl Guest for Misbehave {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "misbehaves on purpose, for tests".into(),
            options: options::describe(OPTIONS),
        }
    }

    fn validate(opts: Options) -> Result<OutputKind, Error> {
        let parsed = Parsed::new("misbehave", OPTIONS, &opts)?;
        match parsed.str("output").unwrap_or("file") {
            "file" => Ok(OutputKind::File),
            "directory" => Ok(OutputKind::Directory),
            "none" => Ok(OutputKind::None),
            other => Err(Error::InvalidOption(format!("output: {other:?}"))),
        }
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let parsed = Parsed::new("misbehave", OPTIONS, &request.options)?;
        let action = parsed.str("action").unwrap_or("ok");
        if !matches!(
            action,
            "ok" | "print"
                | "duplicate-key"
                | "log-flood"
                | "ambient"
                | "ignore-damaged-copy"
                | "ignore-damaged-read"
                | "docker-then-sleep"
                | "docker-then-error"
                | "docker-rewrite"
        ) {
            // Leave something at the destination that must not survive.
            if let Some(d) = &request.destination {
                write_output(d, b"partial output")?;
            }
        }
        match action {
            "ok" | "print" => finish_ok(&request, action == "print"),
            "error" => Err(Error::Io("deliberate failure".into())),
            "panic" => panic!("deliberate panic"),
            "loop" => spin(),
            "grow-memory" => grow_memory(),
            "duplicate-key" => Ok(vec![entry("k", "1"), entry("k", "2")]),
            "put-blob-flood" => put_blob_flood(),
            "flood" => flood(request),
            "escape" => escape(&dest::granted(request.destination)?),
            "resource-bomb" => resource_bomb(),
            "stack-overflow" => Ok(vec![entry("depth", &deep(u64::MAX).to_string())]),
            "response-entries" => Ok((0..2_000_000).map(|_| entry("", "")).collect()),
            "response-values" => Ok((0..16)
                .map(|i| entry(&format!("k{i}"), &"v".repeat(2 << 20)))
                .collect()),
            "response-key" => Ok(vec![entry(&"k".repeat(4 << 20), "v")]),
            "invalid-utf8" => invalid_utf8(),
            "bogus-calls" => bogus_calls(request.destination.as_ref()),
            "ignore-damaged-copy" | "ignore-damaged-read" => {
                let copy = action == "ignore-damaged-copy";
                ignore_damaged(request, copy)
            }
            "ambient" => ambient_with_output(request),
            "log-flood" => log_flood(request),
            "symlink-output" => symlink_output(request),
            "sleep" => sleep(request),
            "forge-log" => forge_log(),
            "deep-dirs" => deep_dirs(request),
            "convert-bomb" | "convert-bomb-gzip" => convert_bomb(action),
            "convert-zstd-22" => convert_zstd_22(),
            "forge-response" => Ok(vec![entry(
                "containerimage.digest",
                "sha256:0\nok       [good] oci -> forged\x1b]0;pwned\x07",
            )]),
            "fd-hog" => fd_hog(request),
            "first-view-only" => first_view_only(request),
            "view-streams" => view_streams(request),
            "copy-ranges" => copy_ranges(request),
            "docker-then-sleep" | "docker-then-error" | "docker-rewrite" => {
                docker::docker(action, &parsed, request.destination.clone())
            }
            other => Err(Error::InvalidOption(format!("action: {other:?}"))),
        }
    }
}
