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
//!   `../x`, a symlink to `../sentinel` and a write through it, a TCP
//!   connection to 127.0.0.1, an HTTP request to 127.0.0.1 through
//!   `wasi:http`); answers `test.refused.WHAT=ERROR` for each
//!   refused attempt, and fails `escaped: ...` if any succeeded.
//!
//! `output=file|directory|none` (default `file`) is what `validate` asks for.

use outport_exporter::{
    ComponentInfo, Destination, Error, Guest, OptionSpec, Options, OutputKind, Parsed, Request,
    ResponseEntry, dest, export, image, options,
};

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::once(
        "action",
        "ok, error, panic, loop, grow-memory, print, duplicate-key, put-blob-flood, flood, escape",
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
        if action != "ok" && action != "print" && action != "duplicate-key" {
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
            other => Err(Error::InvalidOption(format!("action: {other:?}"))),
        }
    }
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
    attempt(
        "tcp",
        std::net::TcpStream::connect("127.0.0.1:9")
            .map(drop)
            .map_err(err),
    );
    attempt("http", http_get("127.0.0.1:9"));
    if escaped.is_empty() {
        Ok(refused)
    } else {
        Err(Error::Other(format!("escaped: {}", escaped.join(", "))))
    }
}

/// `GET http://AUTHORITY/` through `wasi:http`; the error code on failure.
fn http_get(authority: &str) -> Result<(), String> {
    use outport_exporter::bindings::wasi::http::outgoing_handler;
    use outport_exporter::bindings::wasi::http::types::{Fields, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&Scheme::Http))
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some("/")))
        .map_err(|()| "invalid request".to_string())?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(_))) => Ok(()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        _ => Err("no response".to_string()),
    }
}

export!(Misbehave);
