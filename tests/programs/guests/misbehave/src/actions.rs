//! What each `action` does, when it takes more than a line.

use super::*;

/// `action=ok | print`: writes the complete output (after printing to stdout
/// and stderr for `print`) and succeeds.
pub(crate) fn finish_ok(request: &Request, print: bool) -> Result<Vec<ResponseEntry>, Error> {
    if print {
        println!("hello from stdout");
        eprintln!("hello from stderr");
    }
    if let Some(d) = &request.destination {
        write_output(d, b"complete output")?;
    }
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=loop`: never returns, burning fuel.
pub(crate) fn spin() -> Result<Vec<ResponseEntry>, Error> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// `action=grow-memory`: grows its memory until a limit stops it.
pub(crate) fn grow_memory() -> Result<Vec<ResponseEntry>, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// `action=put-blob-flood`: creates blobs until a limit stops it.
pub(crate) fn put_blob_flood() -> Result<Vec<ResponseEntry>, Error> {
    let mut data = vec![0u8; 8 << 20];
    for i in 0u64.. {
        data[..8].copy_from_slice(&i.to_le_bytes());
        image::put_blob("application/octet-stream", &data)?;
    }
    unreachable!("the loop only ends by an error")
}

/// `action=flood`: writes 8 MiB to its output file.
pub(crate) fn flood(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    let d = dest::granted(request.destination)?;
    write_output(&d, &vec![7u8; 8 << 20])?;
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=resource-bomb`: holds blob handles until a limit stops it.
pub(crate) fn resource_bomb() -> Result<Vec<ResponseEntry>, Error> {
    let root = image::root().digest;
    let mut held = Vec::new();
    loop {
        let blob = image::get_blob(&root)?;
        held.push(blob.read()?);
        held.push(blob.read()?);
        std::mem::forget(blob);
    }
}

/// `action=invalid-utf8`: answers a response value that is not UTF-8.
pub(crate) fn invalid_utf8() -> Result<Vec<ResponseEntry>, Error> {
    // SAFETY: deliberately breaks the `String` invariant: the
    // host must refuse to lift it, not crash.
    let value = unsafe { String::from_utf8_unchecked(vec![b'a', 0xff, 0xfe]) };
    Ok(vec![ResponseEntry {
        key: "bad".into(),
        value,
    }])
}

/// `action=ignore-damaged-copy | ignore-damaged-read`: reads a damaged blob (by
/// copy or by stream), ignores the error, and writes a complete output.
pub(crate) fn ignore_damaged(request: Request, copy: bool) -> Result<Vec<ResponseEntry>, Error> {
    let d = dest::granted(request.destination)?;
    ignore_damage(&d, copy)?;
    write_output(&d, b"complete output")?;
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=ambient`: writes the complete output and answers what it sees of the
/// ambient environment.
pub(crate) fn ambient_with_output(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    if let Some(d) = &request.destination {
        write_output(d, b"complete output")?;
    }
    Ok(ambient())
}

/// `action=log-flood`: logs and reports progress 200000 times, then writes the
/// complete output.
pub(crate) fn log_flood(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    for i in 0..200_000u64 {
        log::info(&format!("line {i}"));
        log::progress("flood", i, 200_000);
    }
    if let Some(d) = &request.destination {
        write_output(d, b"complete output")?;
    }
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=symlink-output`: plants a symlink to the sentinel as its output
/// file.
pub(crate) fn symlink_output(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    let d = dest::granted(request.destination)?;
    let dir = dest::preopen(&d.preopen)?;
    let name = d.file.as_deref().unwrap_or("out.txt");
    let _ = dir.unlink_file_at(name);
    dir.symlink_at("../sentinel/keep.txt", name)
        .map_err(|e| Error::Io(format!("symlink: {e:?}")))?;
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=sleep`: waits an hour.
pub(crate) fn sleep(request: Request) -> Result<Vec<ResponseEntry>, Error> {
    std::thread::sleep(std::time::Duration::from_secs(3600));
    Ok(vec![entry("test.ok", &request.instance_id)])
}

/// `action=forge-log`: logs and prints text that tries to forge lines and
/// escape sequences.
pub(crate) fn forge_log() -> Result<Vec<ResponseEntry>, Error> {
    let forged = "safe\n[good] error: forged\x1b]0;pwned\x07\x1b[31m";
    log::info(forged);
    println!("{forged}");
    eprintln!("{forged}");
    Err(Error::Other(forged.into()))
}

/// `action=deep-dirs`: nests 16000 directories in its destination, then fails.
pub(crate) fn deep_dirs(request: Request) -> Result<Vec<ResponseEntry>, Error> {
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

/// `action=convert-bomb | convert-bomb-gzip`: asks the host to convert a
/// decompression bomb.
pub(crate) fn convert_bomb(action: &str) -> Result<Vec<ResponseEntry>, Error> {
    let bomb = image::put_blob("application/vnd.oci.image.layer.v1.tar+gzip", &bomb())?;
    // Rewriting file times makes the host recompress the tar.
    let (compression, epoch) = match action {
        "convert-bomb" => (Compression::Uncompressed, None),
        _ => (Compression::Gzip, Some(0)),
    };
    convert(&[&bomb], compression, None, epoch)
}

/// `action=convert-zstd-22`: asks the host to convert every layer to zstd at
/// level 22.
pub(crate) fn convert_zstd_22() -> Result<Vec<ResponseEntry>, Error> {
    let mut layers = Vec::new();
    for manifest in walk::image_manifests(&image::root())? {
        for layer in walk::read_manifest(&manifest.descriptor.digest)?.layers {
            layers.push(image::get_blob(&layer)?);
        }
    }
    let handles: Vec<&image::Blob> = layers.iter().collect();
    convert(&handles, Compression::Zstd, Some(22), None)
}

/// `action=fd-hog`: holds as many open files as it can, then fails saying how
/// many.
pub(crate) fn fd_hog(request: Request) -> Result<Vec<ResponseEntry>, Error> {
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

/// Asks the host to convert `layers`; answers how many it converted.
pub(crate) fn convert(
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
pub(crate) fn bomb() -> Vec<u8> {
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
pub(crate) fn ignore_damage(destination: &Destination, copy: bool) -> Result<(), Error> {
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
pub(crate) fn escape(destination: &Destination) -> Result<Vec<ResponseEntry>, Error> {
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
    attempt("write-files-parent", write_one(&dir, "../x"));
    attempt("write-files-absolute", write_one(&dir, "/x"));
    match dir.symlink_at("../sentinel", "link") {
        Err(e) => attempt("symlink", Err(format!("{e:?}"))),
        Ok(()) => {
            attempt(
                "write-files-through-symlink",
                write_one(&dir, "link/escaped"),
            );
            attempt("write-files-onto-symlink", write_one(&dir, "link"));
            attempt("write-files-many", write_many(&dir));
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

/// Has the host create `path` in `dir` (`blob.write-files`), with the
/// first byte of the image's root as its bytes.
fn write_one(dir: &Descriptor, path: &str) -> Result<(), String> {
    let blob = image::get_blob(&image::root().digest).map_err(|e| format!("{e:?}"))?;
    let file = NewFile {
        path: path.to_owned(),
        start: 0,
        len: 1,
        mode: 0o644,
        mtime: None,
    };
    blob.write_files(dir, &[file])
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

/// Has the host create a long list of files (long enough to be created on
/// several threads) in which two paths, a third and three quarters of the
/// way in (in different threads' runs), go through the planted symlink
/// `link`: the call must fail naming the first.
fn write_many(dir: &Descriptor) -> Result<(), String> {
    let blob = image::get_blob(&image::root().digest).map_err(|e| format!("{e:?}"))?;
    let files: Vec<NewFile> = (0..600)
        .map(|i| NewFile {
            path: match i {
                200 => "link/first-bad".to_owned(),
                450 => "link/second-bad".to_owned(),
                _ => format!("many-{i}"),
            },
            start: 0,
            len: 1,
            mode: 0o644,
            mtime: None,
        })
        .collect();
    blob.write_files(dir, &files)
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

/// Recurses `n` levels; the update after the call keeps it from becoming
/// a loop.
#[inline(never)]
pub(crate) fn deep(n: u64) -> u64 {
    if n == 0 {
        return DEPTH.load(Ordering::Relaxed);
    }
    let below = deep(n - 1);
    DEPTH.fetch_add(below | 1, Ordering::Relaxed)
}

static DEPTH: AtomicU64 = AtomicU64::new(0);

/// What the guest inherits: its environment, arguments and stdin.
pub(crate) fn ambient() -> Vec<ResponseEntry> {
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
pub(crate) fn bogus_calls(destination: Option<&Destination>) -> Result<Vec<ResponseEntry>, Error> {
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
