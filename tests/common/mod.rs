//! Helpers shared by the end-to-end tests: running `outport`, `skopeo`,
//! `umoci` and the sample script; reading, mutating and packing OCI layouts;
//! building a legacy `docker save` tarball; checking that a failed export left
//! nothing behind.
#![allow(dead_code)] // each test module uses its own subset

pub mod relay;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_LAYER_PLAIN: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_IMAGE_NAME: &str = "io.containerd.image.name";

/// The sample's one image: its `index.json` entry's names.
pub const SAMPLE_TAG: &str = "latest";
pub const SAMPLE_NAME: &str = "docker.io/outport/sample:latest";

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// The repository's root (the tests are compiled as part of `runtime/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The checked-in sample image (an OCI layout directory). Read it, never
/// write to it: copy it with [`copy_sample`] to change it.
pub fn sample_image() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/sample-image"
    ))
}

/// The script that makes the sample image.
pub fn sample_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/make-sample-image.py"
    ))
}

/// A fresh temporary directory (under the system's temp dir, never the repo).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("outport-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Creates `parent/name` (an empty directory) and returns it.
pub fn mkdir(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A path as `&str`, for building `--output` specs and tool arguments.
pub fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("not UTF-8: {}", path.display()))
}

/// `oci-archive:PATH`, as skopeo names an OCI layout tarball.
pub fn oci_archive(path: &Path) -> String {
    format!("oci-archive:{}", path_str(path))
}

/// `oci:PATH`, as skopeo names an OCI layout directory.
pub fn oci_dir(path: &Path) -> String {
    format!("oci:{}", path_str(path))
}

/// `oci:PATH:REF`.
pub fn oci_dir_ref(path: &Path, reference: &str) -> String {
    format!("oci:{}:{reference}", path_str(path))
}

// ---------------------------------------------------------------------------
// Digests and JSON
// ---------------------------------------------------------------------------

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest.
#[track_caller]
pub fn digest_hex(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest:?}"))
}

/// The first 12 hex digits of a digest: what an error message names at
/// least, whether it prints the digest in full or abbreviated.
#[track_caller]
pub fn short(digest: &str) -> &str {
    &digest_hex(digest)[..12]
}

/// A string field of a JSON value, or a panic naming it.
#[track_caller]
pub fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {value}"))
}

/// An array field of a JSON value, or a panic naming it.
#[track_caller]
pub fn array_at<'a>(value: &'a Value, key: &str) -> &'a Vec<Value> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("no array {key:?} in {value}"))
}

#[track_caller]
pub fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON: {e}\n{}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    })
}

#[track_caller]
pub fn parse_json(what: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} is not JSON: {e}\n{}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// `os/architecture[/variant]` of a descriptor's or config's platform object.
pub fn platform_string(platform: &Value) -> String {
    let mut s = format!(
        "{}/{}",
        str_at(platform, "os"),
        str_at(platform, "architecture")
    );
    if let Some(variant) = platform["variant"].as_str() {
        s.push('/');
        s.push_str(variant);
    }
    s
}

/// The sorted platforms of an image index's manifests.
pub fn index_platforms(index: &Value) -> Vec<String> {
    let mut platforms: Vec<String> = array_at(index, "manifests")
        .iter()
        .map(|desc| platform_string(&desc["platform"]))
        .collect();
    platforms.sort();
    platforms
}

/// The platforms of the sample image.
pub fn sample_platforms() -> Vec<String> {
    vec!["linux/amd64".to_owned(), "linux/arm64/v8".to_owned()]
}

// ---------------------------------------------------------------------------
// Running outport
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Other tools
// ---------------------------------------------------------------------------

/// Runs `program args...`; panics (the test fails, it is not skipped) when
/// the program is not installed.
#[track_caller]
pub fn tool(program: &str, args: &[&str]) -> Output {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "{program} is not installed; the end-to-end tests need it \
             (scripts/install-test-deps installs it, scripts/test runs that first)"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

/// Runs `program args...`, asserts it succeeded and returns its stdout.
#[track_caller]
pub fn tool_ok(program: &str, args: &[&str]) -> String {
    let output = tool(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
pub fn skopeo(args: &[&str]) -> String {
    tool_ok("skopeo", args)
}

/// `skopeo ARGS` whose stdout is JSON (`inspect`, `inspect --raw`).
#[track_caller]
pub fn skopeo_json(args: &[&str]) -> Value {
    let stdout = skopeo(args);
    parse_json(&format!("the output of skopeo {args:?}"), stdout.as_bytes())
}

/// `skopeo --insecure-policy copy --all FROM TO`: copies every platform and
/// checks every blob's digest on the way.
#[track_caller]
pub fn skopeo_copy_all(from: &str, to: &str) {
    skopeo(&["--insecure-policy", "copy", "--all", "--quiet", from, to]);
}

#[track_caller]
pub fn umoci(args: &[&str]) -> String {
    tool_ok("umoci", args)
}

/// Runs `python3 examples/make-sample-image.py ARGS`.
#[track_caller]
pub fn sample_script_run(args: &[&str]) -> Output {
    let script = sample_script();
    let mut all = vec![path_str(&script)];
    all.extend_from_slice(args);
    tool("python3", &all)
}

// ---------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------

/// The names of a directory's entries, sorted.
#[track_caller]
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("read a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Asserts that `dir` does not exist or is empty: a failed export left
/// nothing behind (no output, no temporary file or directory).
#[track_caller]
pub fn assert_empty_or_absent(dir: &Path) {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => panic!("stat {}: {e}", dir.display()),
        Ok(meta) => {
            assert!(
                meta.is_dir(),
                "{} exists and is not a directory",
                dir.display()
            );
            let names = dir_names(dir);
            assert!(
                names.is_empty(),
                "{} should be empty, holds {names:?}",
                dir.display()
            );
        }
    }
}

/// Copies a directory tree of plain files and directories.
#[track_caller]
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("read a directory entry");
        let kind = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        } else {
            panic!("unexpected file type: {}", entry.path().display());
        }
    }
}

/// A writable copy of the sample image at `parent/name`.
#[track_caller]
pub fn copy_sample(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    copy_dir(&sample_image(), &dir);
    dir
}

/// A copy of the sample at `parent/name` whose `index.json` points straight
/// at the `arch` image manifest (a single-platform image), named `tag`.
#[track_caller]
pub fn single_platform_sample(parent: &Path, name: &str, arch: &str, tag: &str) -> PathBuf {
    let dir = copy_sample(parent, name);
    let layout = Layout::open(&dir);
    let mut desc = layout.files().manifest_descriptor(arch);
    desc["annotations"] = json!({ ANN_REF_NAME: tag });
    layout.write_index_json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [desc],
    }));
    dir
}

/// Recursively lists the regular files under `dir`: relative path -> bytes.
fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let entry = entry.expect("read a directory entry");
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            read_tree(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("a path under the root")
                .to_str()
                .expect("a UTF-8 path")
                .to_owned();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            files.insert(rel, bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// Reading OCI layouts (directories and tarballs)
// ---------------------------------------------------------------------------

/// The regular files of an OCI image layout, read into memory: relative
/// path (`index.json`, `blobs/sha256/<hex>`) -> bytes.
pub struct LayoutFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl LayoutFiles {
    #[track_caller]
    pub fn from_dir(dir: &Path) -> LayoutFiles {
        assert!(dir.is_dir(), "{} is not a directory", dir.display());
        let mut files = BTreeMap::new();
        read_tree(dir, dir, &mut files);
        LayoutFiles { files }
    }

    #[track_caller]
    pub fn from_tar(path: &Path) -> LayoutFiles {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        LayoutFiles::from_tar_bytes(&bytes)
    }

    /// Reads a tarball's regular files (a leading `./` is dropped). Panics on
    /// a malformed tar or a duplicate path.
    #[track_caller]
    pub fn from_tar_bytes(bytes: &[u8]) -> LayoutFiles {
        let mut archive = tar::Archive::new(bytes);
        let mut files = BTreeMap::new();
        for entry in archive.entries().expect("read the tar") {
            let mut entry = entry.expect("read a tar entry");
            let kind = entry.header().entry_type();
            let path = entry.path().expect("a tar entry path").into_owned();
            let path = path.to_str().expect("a UTF-8 tar path");
            let path = path.strip_prefix("./").unwrap_or(path).to_owned();
            if kind.is_dir() {
                continue;
            }
            assert!(
                kind.is_file(),
                "unexpected tar entry type {kind:?} for {path}"
            );
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .expect("read a tar entry's data");
            assert!(
                files.insert(path.clone(), data).is_none(),
                "{path} is twice in the tar"
            );
        }
        LayoutFiles { files }
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> &[u8] {
        self.files.get(path).unwrap_or_else(|| {
            panic!(
                "no {path} in the layout; it holds {:?}",
                self.files.keys().collect::<Vec<_>>()
            )
        })
    }

    #[track_caller]
    pub fn index_json(&self) -> Value {
        parse_json("index.json", self.get("index.json"))
    }

    /// The one entry of `index.json` (panics unless there is exactly one).
    #[track_caller]
    pub fn root(&self) -> Value {
        let index = self.index_json();
        let entries = array_at(&index, "manifests");
        assert_eq!(
            entries.len(),
            1,
            "index.json should have one entry: {index}"
        );
        entries[0].clone()
    }

    #[track_caller]
    pub fn blob(&self, digest: &str) -> &[u8] {
        self.get(&format!("blobs/sha256/{}", digest_hex(digest)))
    }

    #[track_caller]
    pub fn blob_json(&self, digest: &str) -> Value {
        parse_json(&format!("blob {digest}"), self.blob(digest))
    }

    /// The digests of all blobs in `blobs/sha256/`.
    pub fn blob_digests(&self) -> BTreeSet<String> {
        self.files
            .keys()
            .filter_map(|path| path.strip_prefix("blobs/sha256/"))
            .map(|hex| format!("sha256:{hex}"))
            .collect()
    }

    /// The descriptor, in the root index, of the image manifest for `arch`.
    #[track_caller]
    pub fn manifest_descriptor(&self, arch: &str) -> Value {
        let root = self.root();
        let index = self.blob_json(str_at(&root, "digest"));
        array_at(&index, "manifests")
            .iter()
            .find(|desc| desc["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} manifest in {index}"))
            .clone()
    }

    /// The image manifest for `arch` in the root index.
    #[track_caller]
    pub fn manifest(&self, arch: &str) -> Value {
        self.blob_json(str_at(&self.manifest_descriptor(arch), "digest"))
    }

    /// Checks the layout is complete and consistent: `oci-layout` says
    /// 1.0.0; every blob's name is its sha256; every descriptor reachable
    /// from `index.json` names a blob that exists with that size.
    #[track_caller]
    pub fn verify(&self) {
        let oci_layout = parse_json("oci-layout", self.get("oci-layout"));
        assert_eq!(
            oci_layout["imageLayoutVersion"], "1.0.0",
            "oci-layout: {oci_layout}"
        );
        for (path, bytes) in &self.files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(
                    digest_hex(&sha256_digest(bytes)),
                    hex,
                    "blob {path} does not hash to its name"
                );
            }
        }
        let index = self.index_json();
        let mut pending: Vec<Value> = array_at(&index, "manifests").clone();
        assert!(!pending.is_empty(), "index.json lists no image: {index}");
        let mut seen = BTreeSet::new();
        while let Some(desc) = pending.pop() {
            let digest = str_at(&desc, "digest").to_owned();
            let bytes = self.blob(&digest);
            assert_eq!(
                Some(bytes.len() as u64),
                desc["size"].as_u64(),
                "blob {digest} has a size other than its descriptor's: {desc}"
            );
            if !seen.insert(digest.clone()) {
                continue;
            }
            let media_type = str_at(&desc, "mediaType");
            if media_type == MT_INDEX || media_type == MT_DOCKER_LIST {
                let index = parse_json(&digest, bytes);
                pending.extend(array_at(&index, "manifests").iter().cloned());
            } else if media_type == MT_MANIFEST || media_type == MT_DOCKER_MANIFEST {
                let manifest = parse_json(&digest, bytes);
                pending.push(manifest["config"].clone());
                pending.extend(array_at(&manifest, "layers").iter().cloned());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Changing OCI layouts on disk
// ---------------------------------------------------------------------------

/// An OCI layout directory that a test changes (always a copy).
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn open(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Reads the layout as it is now.
    #[track_caller]
    pub fn files(&self) -> LayoutFiles {
        LayoutFiles::from_dir(&self.dir)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest_hex(digest))
    }

    #[track_caller]
    pub fn write_index_json(&self, index: &Value) {
        let path = self.dir.join("index.json");
        fs::write(
            &path,
            serde_json::to_vec(index).expect("serialize index.json"),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Stores `bytes` as a blob; returns its digest and size.
    #[track_caller]
    pub fn add_blob(&self, bytes: &[u8]) -> (String, u64) {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        (digest, bytes.len() as u64)
    }

    /// Flips every bit of the byte in the middle of a blob (same size, other
    /// content, so its digest no longer matches).
    #[track_caller]
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        let mut bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    #[track_caller]
    pub fn remove_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }

    /// Rewrites the JSON blob `digest` with `edit`, stores the result as a new
    /// blob, and re-links its parents: every index or manifest reachable
    /// from `index.json` that refers to it (and so on up to `index.json`)
    /// gets the new digest and size, so the layout is consistent but for what
    /// `edit` did. Returns the new digest. The old blobs stay, unreferenced.
    #[track_caller]
    pub fn rewrite_json_blob(&self, digest: &str, edit: impl FnOnce(&mut Value)) -> String {
        let files = self.files();
        let mut value = files.blob_json(digest);
        edit(&mut value);
        let bytes = serde_json::to_vec(&value).expect("serialize a JSON blob");
        let (new_digest, size) = self.add_blob(&bytes);
        if new_digest != digest {
            self.relink(digest, &new_digest, size);
        }
        new_digest
    }

    /// Points every reference to blob `old` at `new` (of `size` bytes).
    #[track_caller]
    fn relink(&self, old: &str, new: &str, size: u64) {
        let parents = self.parents_of(old);
        let mut index = self.files().index_json();
        if relink_descriptors(&mut index, old, new, size) {
            self.write_index_json(&index);
        }
        for parent in parents {
            self.rewrite_json_blob(&parent, |value| {
                relink_descriptors(value, old, new, size);
            });
        }
    }

    /// The indexes and manifests, reachable from `index.json`, that have a
    /// descriptor of `child`.
    fn parents_of(&self, child: &str) -> Vec<String> {
        let files = self.files();
        let mut pending: Vec<Value> = array_at(&files.index_json(), "manifests").clone();
        let mut seen = BTreeSet::new();
        let mut parents = Vec::new();
        while let Some(desc) = pending.pop() {
            let Some(digest) = desc["digest"].as_str() else {
                continue;
            };
            let media_type = desc["mediaType"].as_str().unwrap_or_default();
            let is_index = media_type == MT_INDEX || media_type == MT_DOCKER_LIST;
            let is_manifest = media_type == MT_MANIFEST || media_type == MT_DOCKER_MANIFEST;
            if !(is_index || is_manifest) || !seen.insert(digest.to_owned()) {
                continue;
            }
            let Some(bytes) = files
                .files
                .get(&format!("blobs/sha256/{}", digest_hex(digest)))
            else {
                continue;
            };
            let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            let mut children: Vec<Value> = Vec::new();
            if is_index {
                children.extend(value["manifests"].as_array().into_iter().flatten().cloned());
            } else {
                children.push(value["config"].clone());
                children.extend(value["layers"].as_array().into_iter().flatten().cloned());
            }
            if children.iter().any(|c| c["digest"] == child) {
                parents.push(digest.to_owned());
            }
            pending.extend(children);
        }
        parents
    }
}

/// Sets `digest` and `size` of every object in `value` whose digest is `old`.
/// Returns whether anything changed.
fn relink_descriptors(value: &mut Value, old: &str, new: &str, size: u64) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            if map.get("digest").and_then(Value::as_str) == Some(old) {
                map.insert("digest".to_owned(), json!(new));
                map.insert("size".to_owned(), json!(size));
                changed = true;
            }
            for child in map.values_mut() {
                changed |= relink_descriptors(child, old, new, size);
            }
        }
        Value::Array(items) => {
            for child in items {
                changed |= relink_descriptors(child, old, new, size);
            }
        }
        _ => {}
    }
    changed
}

// ---------------------------------------------------------------------------
// Tarballs
// ---------------------------------------------------------------------------

/// Appends a regular file (mode 0644, mtime 0, root) to a tar.
fn append_file<W: std::io::Write>(builder: &mut tar::Builder<W>, path: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, path, data)
        .unwrap_or_else(|e| panic!("add {path} to a tar: {e}"));
}

/// Appends a directory entry (mode 0755) to a tar.
fn append_dir<W: std::io::Write>(builder: &mut tar::Builder<W>, path: &str) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, path, std::io::empty())
        .unwrap_or_else(|e| panic!("add {path} to a tar: {e}"));
}

/// Packs an OCI layout directory into an OCI archive at `tar_path`:
/// `oci-layout` and `index.json` first, then `blobs/`, `blobs/sha256/` and
/// the blobs in name order; blob `last`, if given, comes last.
#[track_caller]
pub fn pack_tar(dir: &Path, tar_path: &Path, last: Option<&str>) {
    let files = LayoutFiles::from_dir(dir);
    let last_path = last.map(|digest| format!("blobs/sha256/{}", digest_hex(digest)));
    if let Some(path) = &last_path {
        assert!(
            files.files.contains_key(path),
            "no {path} in {}",
            dir.display()
        );
    }
    let mut order: Vec<&String> = Vec::new();
    for first in ["oci-layout", "index.json"] {
        order.extend(files.files.keys().filter(|path| *path == first));
    }
    order.extend(files.files.keys().filter(|path| {
        path.as_str() != "oci-layout"
            && path.as_str() != "index.json"
            && Some(path.as_str()) != last_path.as_deref()
    }));
    order.extend(
        files
            .files
            .keys()
            .filter(|path| Some(path.as_str()) == last_path.as_deref()),
    );

    let file =
        fs::File::create(tar_path).unwrap_or_else(|e| panic!("create {}: {e}", tar_path.display()));
    let mut builder = tar::Builder::new(file);
    let mut dirs_done = false;
    for path in order {
        if path.starts_with("blobs/") && !dirs_done {
            append_dir(&mut builder, "blobs/");
            append_dir(&mut builder, "blobs/sha256/");
            dirs_done = true;
        }
        append_file(&mut builder, path, &files.files[path]);
    }
    builder
        .into_inner()
        .expect("finish the tar")
        .sync_all()
        .expect("sync the tar");
}

/// Cuts the tarball at `tar_path` in the middle of blob `digest`'s data.
#[track_caller]
pub fn truncate_in_blob(tar_path: &Path, digest: &str) {
    let wanted = format!("blobs/sha256/{}", digest_hex(digest));
    let file =
        fs::File::open(tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    let mut archive = tar::Archive::new(file);
    let mut cut = None;
    for entry in archive.entries().expect("read the tar") {
        let entry = entry.expect("read a tar entry");
        let path = entry.path().expect("a tar entry path").into_owned();
        let path = path.to_str().expect("a UTF-8 tar path");
        if path.strip_prefix("./").unwrap_or(path) == wanted {
            let size = entry.size();
            assert!(size >= 2, "blob {digest} is too small to cut in half");
            cut = Some(entry.raw_file_position() + size / 2);
        }
    }
    let cut = cut.unwrap_or_else(|| panic!("no {wanted} in {}", tar_path.display()));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(tar_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    file.set_len(cut).expect("truncate the tar");
}

/// What [`docker_save_tar`] wrote.
pub struct DockerSave {
    /// The config's digest (`<hex>.json` in the tarball).
    pub config_digest: String,
    /// The uncompressed layers' digests (the config's `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
}

/// Writes a legacy `docker save` tarball of the sample's `arch` image at
/// `tar_path`: `<layer id>/{VERSION,json,layer.tar}` with the layers
/// uncompressed, `<config hex>.json`, `manifest.json` (tag
/// `outport/sample:latest`) and `repositories`.
#[track_caller]
pub fn docker_save_tar(arch: &str, tar_path: &Path) -> DockerSave {
    let sample = LayoutFiles::from_dir(&sample_image());
    let manifest = sample.manifest(arch);
    let config_digest = str_at(&manifest["config"], "digest").to_owned();
    let config = sample.blob(&config_digest);
    let diff_ids: Vec<String> = array_at(&parse_json("config", config)["rootfs"], "diff_ids")
        .iter()
        .map(|id| id.as_str().expect("a diff ID").to_owned())
        .collect();

    let file =
        fs::File::create(tar_path).unwrap_or_else(|e| panic!("create {}: {e}", tar_path.display()));
    let mut builder = tar::Builder::new(file);
    let mut layer_paths = Vec::new();
    let mut parent: Option<String> = None;
    for (n, layer) in array_at(&manifest, "layers").iter().enumerate() {
        let digest = str_at(layer, "digest");
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(sample.blob(digest))
            .read_to_end(&mut tar_bytes)
            .unwrap_or_else(|e| panic!("gunzip layer {digest}: {e}"));
        assert_eq!(
            sha256_digest(&tar_bytes),
            diff_ids[n],
            "layer {n} of the sample does not match its diff ID"
        );
        // A v1 layer ID, as `docker save` names the layer directories.
        let id = hex::encode(Sha256::digest(
            format!("{}\n{}", parent.as_deref().unwrap_or(""), diff_ids[n]).as_bytes(),
        ));
        let mut v1 = json!({ "id": id, "created": "2024-01-01T00:00:00Z" });
        if let Some(parent) = &parent {
            v1["parent"] = json!(parent);
        }
        append_dir(&mut builder, &format!("{id}/"));
        append_file(&mut builder, &format!("{id}/VERSION"), b"1.0");
        append_file(
            &mut builder,
            &format!("{id}/json"),
            &serde_json::to_vec(&v1).expect("serialize"),
        );
        append_file(&mut builder, &format!("{id}/layer.tar"), &tar_bytes);
        layer_paths.push(format!("{id}/layer.tar"));
        parent = Some(id);
    }
    let config_file = format!("{}.json", digest_hex(&config_digest));
    append_file(&mut builder, &config_file, config);
    let manifest_json = json!([{
        "Config": config_file,
        "RepoTags": ["outport/sample:latest"],
        "Layers": layer_paths,
    }]);
    append_file(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest_json).expect("serialize"),
    );
    let repositories = json!({ "outport/sample": { "latest": parent.expect("a layer") } });
    append_file(
        &mut builder,
        "repositories",
        &serde_json::to_vec(&repositories).expect("serialize"),
    );
    builder
        .into_inner()
        .expect("finish the tar")
        .sync_all()
        .expect("sync the tar");
    DockerSave {
        config_digest,
        diff_ids,
    }
}

/// Deterministic pseudo-random bytes (not an image in any format).
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
