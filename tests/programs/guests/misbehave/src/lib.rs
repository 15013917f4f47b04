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
//!   `../x`, a symlink to `../sentinel` and a write through it); answers
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
//!   holds them for 3 s, then fails saying how many it held.
//!
//! `output=file|directory|none` (default `file`) is what `validate` asks for.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::write::GzEncoder;
use outport_exporter::bindings::outport::exporter::image::{Compression, ConvertOptions};

use outport_exporter::bindings::wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};

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
         convert-zstd-22, fd-hog, forge-response",
    )
    .default("ok"),
    OptionSpec::once("output", "file, directory or none").default("file"),
];

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
        ) {
            // Leave something at the destination that must not survive.
            if let Some(d) = &request.destination {
                write_output(d, b"partial output")?;
            }
        }
        match action {
            "ok" | "print" => {
                if action == "print" {
                    println!("hello from stdout");
                    eprintln!("hello from stderr");
                }
                if let Some(d) = &request.destination {
                    write_output(d, b"complete output")?;
                }
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "error" => Err(Error::Io("deliberate failure".into())),
            "panic" => panic!("deliberate panic"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow-memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "duplicate-key" => Ok(vec![entry("k", "1"), entry("k", "2")]),
            "put-blob-flood" => {
                let mut data = vec![0u8; 8 << 20];
                for i in 0u64.. {
                    data[..8].copy_from_slice(&i.to_le_bytes());
                    image::put_blob("application/octet-stream", &data)?;
                }
                unreachable!("the loop only ends by an error")
            }
            "flood" => {
                let d = dest::granted(request.destination)?;
                write_output(&d, &vec![7u8; 8 << 20])?;
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "escape" => escape(&dest::granted(request.destination)?),
            "resource-bomb" => {
                let root = image::root().digest;
                let mut held = Vec::new();
                loop {
                    let blob = image::get_blob(&root)?;
                    held.push(blob.read()?);
                    held.push(blob.read()?);
                    std::mem::forget(blob);
                }
            }
            "stack-overflow" => Ok(vec![entry("depth", &deep(u64::MAX).to_string())]),
            "response-entries" => Ok((0..2_000_000).map(|_| entry("", "")).collect()),
            "response-values" => Ok((0..16)
                .map(|i| entry(&format!("k{i}"), &"v".repeat(2 << 20)))
                .collect()),
            "response-key" => Ok(vec![entry(&"k".repeat(4 << 20), "v")]),
            "invalid-utf8" => {
                // SAFETY: deliberately breaks the `String` invariant: the
                // host must refuse to lift it, not crash.
                let value = unsafe { String::from_utf8_unchecked(vec![b'a', 0xff, 0xfe]) };
                Ok(vec![ResponseEntry {
                    key: "bad".into(),
                    value,
                }])
            }
            "bogus-calls" => bogus_calls(request.destination.as_ref()),
            "ignore-damaged-copy" | "ignore-damaged-read" => {
                let d = dest::granted(request.destination)?;
                ignore_damage(&d, action == "ignore-damaged-copy")?;
                write_output(&d, b"complete output")?;
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "ambient" => {
                if let Some(d) = &request.destination {
                    write_output(d, b"complete output")?;
                }
                Ok(ambient())
            }
            "log-flood" => {
                for i in 0..200_000u64 {
                    log::info(&format!("line {i}"));
                    log::progress("flood", i, 200_000);
                }
                if let Some(d) = &request.destination {
                    write_output(d, b"complete output")?;
                }
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "symlink-output" => {
                let d = dest::granted(request.destination)?;
                let dir = dest::preopen(&d.preopen)?;
                let name = d.file.as_deref().unwrap_or("out.txt");
                let _ = dir.unlink_file_at(name);
                dir.symlink_at("../sentinel/keep.txt", name)
                    .map_err(|e| Error::Io(format!("symlink: {e:?}")))?;
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(vec![entry("test.ok", &request.instance_id)])
            }
            "forge-log" => {
                let forged = "safe\n[good] error: forged\x1b]0;pwned\x07\x1b[31m";
                log::info(forged);
                println!("{forged}");
                eprintln!("{forged}");
                Err(Error::Other(forged.into()))
            }
            "deep-dirs" => {
                let d = dest::granted(request.destination)?;
                let mut dir = dest::preopen(&d.preopen)?;
                for _ in 0..16_000 {
                    dir.create_directory_at("d")
                        .map_err(|e| Error::Io(format!("mkdir: {e:?}")))?;
                    dir = dir
                        .open_at(
                            PathFlags::empty(),
                            "d",
                            OpenFlags::DIRECTORY,
                            DescriptorFlags::MUTATE_DIRECTORY | DescriptorFlags::READ,
                        )
                        .map_err(|e| Error::Io(format!("open: {e:?}")))?;
                }
                Err(Error::Io("deliberate failure after nesting".into()))
            }
            "convert-bomb" | "convert-bomb-gzip" => {
                let bomb = image::put_blob("application/vnd.oci.image.layer.v1.tar+gzip", &bomb())?;
                // Rewriting file times makes the host recompress the tar.
                let (compression, epoch) = match action {
                    "convert-bomb" => (Compression::Uncompressed, None),
                    _ => (Compression::Gzip, Some(0)),
                };
                convert(&[&bomb], compression, None, epoch)
            }
            "convert-zstd-22" => {
                let mut layers = Vec::new();
                for manifest in walk::image_manifests(&image::root())? {
                    for layer in walk::read_manifest(&manifest.descriptor.digest)?.layers {
                        layers.push(image::get_blob(&layer)?);
                    }
                }
                let handles: Vec<&image::Blob> = layers.iter().collect();
                convert(&handles, Compression::Zstd, Some(22), None)
            }
            "forge-response" => Ok(vec![entry(
                "containerimage.digest",
                "sha256:0\nok       [good] oci -> forged\x1b]0;pwned\x07",
            )]),
            "fd-hog" => {
                let d = dest::granted(request.destination)?;
                let dir = dest::preopen(&d.preopen)?;
                let mut held = Vec::new();
                let mut stopped = "nothing".to_string();
                for i in 0..9_900 {
                    match dir.open_at(
                        PathFlags::empty(),
                        &format!("f{i}"),
                        OpenFlags::CREATE,
                        DescriptorFlags::READ | DescriptorFlags::WRITE,
                    ) {
                        Ok(file) => held.push(file),
                        Err(e) => {
                            stopped = format!("{e:?}");
                            break;
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(3));
                Err(Error::Io(format!(
                    "held {} files (stopped by {stopped})",
                    held.len()
                )))
            }
            other => Err(Error::InvalidOption(format!("action: {other:?}"))),
        }
    }
}

/// Asks the host to convert `layers`; answers how many it converted.
fn convert(
    layers: &[&image::Blob],
    compression: Compression,
    level: Option<i32>,
    rewrite_timestamp: Option<u64>,
) -> Result<Vec<ResponseEntry>, Error> {
    let options = ConvertOptions {
        compression,
        level,
        force: true,
        rewrite_timestamp,
    };
    let converted = image::convert_layers(layers, options)?;
    let count = converted.iter().filter(|c| c.is_some()).count();
    Ok(vec![entry("test.converted", &count.to_string())])
}

/// A gzip layer of 512 members, each 16 MiB of zeros (about 16 KiB
/// compressed), after one holding a tar header for a file of 8 GiB less the
/// header and the end-of-archive blocks: 8 MiB that decompress to 8 GiB.
fn bomb() -> Vec<u8> {
    const MEMBER: usize = 16 << 20;
    const MEMBERS: u64 = 512;
    let gzip = |data: &[u8]| {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = encoder.write_all(data);
        encoder.finish().unwrap_or_default()
    };
    let mut header = tar::Header::new_ustar();
    let _ = header.set_path("zeros");
    header.set_size(MEMBERS * MEMBER as u64 - 1024);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = gzip(header.as_bytes());
    let zeros = gzip(&vec![0u8; MEMBER]);
    for _ in 0..MEMBERS {
        out.extend_from_slice(&zeros);
    }
    out
}

/// Copies (`copy`) or reads every layer of the image, ignoring errors.
fn ignore_damage(destination: &Destination, copy: bool) -> Result<(), Error> {
    let (_, file) = dest::open_file(destination, "ignore-damaged")?;
    for manifest in walk::image_manifests(&image::root())? {
        for layer in walk::read_manifest(&manifest.descriptor.digest)?.layers {
            let blob = image::get_blob(&layer)?;
            if copy {
                let _ = blob.copy_to_file(&file, 0);
            } else if let Ok(stream) = blob.read() {
                while stream.blocking_read(1 << 20).is_ok() {}
            }
        }
    }
    Ok(())
}

/// Every way out of the destination this guest knows, each expected to fail.
fn escape(destination: &Destination) -> Result<Vec<ResponseEntry>, Error> {
    let dir = dest::preopen(&destination.preopen)?;
    let mut refused = Vec::new();
    let mut escaped = Vec::new();
    let mut attempt = |what: &str, result: Result<(), String>| match result {
        Ok(()) => escaped.push(what.to_string()),
        Err(e) => refused.push(entry(&format!("test.refused.{what}"), &e)),
    };
    let err = |e: std::io::Error| e.to_string();
    attempt(
        "etc-passwd",
        std::fs::read("/etc/passwd").map(drop).map_err(err),
    );
    attempt("absolute", std::fs::write("/x", b"escaped").map_err(err));
    let parent = format!("{}/../x", destination.preopen);
    attempt("parent", std::fs::write(parent, b"escaped").map_err(err));
    attempt(
        "parent-at",
        dest::write_file(&dir, "../x", b"escaped").map_err(|e| format!("{e:?}")),
    );
    match dir.symlink_at("../sentinel", "link") {
        Err(e) => attempt("symlink", Err(format!("{e:?}"))),
        Ok(()) => {
            attempt(
                "through-symlink",
                dest::write_file(&dir, "link/escaped", b"escaped").map_err(|e| format!("{e:?}")),
            );
            attempt(
                "read-through-symlink",
                std::fs::read_dir(format!("{}/link", destination.preopen))
                    .map(drop)
                    .map_err(err),
            );
        }
    }
    if escaped.is_empty() {
        Ok(refused)
    } else {
        Err(Error::Other(format!("escaped: {}", escaped.join(", "))))
    }
}

/// Recurses `n` levels; the update after the call keeps it from becoming
/// a loop.
#[inline(never)]
fn deep(n: u64) -> u64 {
    if n == 0 {
        return DEPTH.load(Ordering::Relaxed);
    }
    let below = deep(n - 1);
    DEPTH.fetch_add(below | 1, Ordering::Relaxed)
}

static DEPTH: AtomicU64 = AtomicU64::new(0);

/// What the guest inherits: its environment, arguments and stdin.
fn ambient() -> Vec<ResponseEntry> {
    use std::io::Read as _;
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut input = Vec::new();
    let stdin = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => String::from_utf8_lossy(&input).into_owned(),
        Err(e) => format!("error: {e}"),
    };
    vec![
        entry("test.env", &env.join("\n")),
        entry("test.args", &args.join("\n")),
        entry("test.stdin", &stdin),
    ]
}

/// Malformed arguments to the host, each expected to be refused.
fn bogus_calls(destination: Option<&Destination>) -> Result<Vec<ResponseEntry>, Error> {
    let mut refused = Vec::new();
    let mut accepted = Vec::new();
    let short = format!("sha256:{}", "a".repeat(63));
    let upper = format!("sha256:{}", "A".repeat(64));
    for (what, digest) in [
        ("zz", "sha256:zz"),
        ("short", short.as_str()),
        ("upper", upper.as_str()),
        ("empty-digest", ""),
        ("traversal", "sha256:../../etc/passwd"),
    ] {
        match image::get_blob(digest) {
            Ok(_) => accepted.push(what),
            Err(e) => refused.push(entry(&format!("test.refused.{what}"), &format!("{e:?}"))),
        }
    }
    for (what, media_type) in [
        ("empty-media-type", ""),
        ("garbage-media-type", "not a media type\n"),
        ("no-subtype", "application"),
    ] {
        match image::put_blob(media_type, b"data") {
            Ok(_) => accepted.push(what),
            Err(e) => refused.push(entry(&format!("test.refused.{what}"), &format!("{e:?}"))),
        }
    }
    if let Some(d) = destination {
        let (_, file) = dest::open_file(d, "bogus-calls")?;
        let root = image::root();
        let blob = image::get_blob(&root.digest)?;
        for (what, start, len) in [
            ("range-past-end", root.size, 1),
            ("range-start-past-end", root.size + 1, 0),
            ("range-overflow", 1, u64::MAX),
        ] {
            match blob.copy_range_to_file(start, len, &file, 0) {
                Ok(_) => accepted.push(what),
                Err(e) => refused.push(entry(&format!("test.refused.{what}"), &format!("{e:?}"))),
            }
        }
    }
    if accepted.is_empty() {
        Ok(refused)
    } else {
        Err(Error::Other(format!("accepted: {}", accepted.join(", "))))
    }
}

export!(Misbehave);
