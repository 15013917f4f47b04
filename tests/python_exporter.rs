//! The contract is language-neutral: `examples/python-exporter`, an
//! exporter written in Python and built into a component by componentize-py
//! (installed by `scripts/install-test-deps`; without it these tests fail,
//! saying so), runs on the sample image as `type=wasm,component=PATH` and
//! as the plugin `type=inspect`, and reports what `skopeo inspect` sees.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::*;
use crate::plugins::assert_plugin_listed;

/// The built Python exporter and a compile cache holding it.
struct Built {
    /// `target/python-exporter/inspect.wasm`.
    component: PathBuf,
    /// Its directory, used as a plugin directory (`inspect.wasm` is its
    /// only component).
    dir: PathBuf,
    /// The compile cache every run here shares: compiling a CPython
    /// component takes a while, so it is done once (and kept under
    /// `target/` for the next test run, as the cache is meant to).
    cache: PathBuf,
    /// What `outport exporters --plugin-dir DIR` printed, which compiled it.
    listing: Run,
}

/// Builds the exporter with its build script (once per test run; the
/// script does nothing when the component is up to date) and compiles it
/// into the shared cache by listing it as a plugin.
fn python_exporter() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = repo_root().join("examples/python-exporter/build");
        let output = Command::new(&script).output().expect("run the build script");
        assert!(
            output.status.success(),
            "{} failed (componentize-py comes from scripts/install-test-deps, which scripts/test runs):\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let component = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(component.is_file(), "{} was not built", component.display());
        let dir = component.parent().unwrap().to_path_buf();
        let cache = dir.join("compile-cache");
        let listing = outport_with_cache(
            ["exporters", "--plugin-dir", path_str(&dir)],
            &cache,
            &[],
        );
        Built {
            component,
            dir,
            cache,
            listing,
        }
    })
}

/// `outport export SAMPLE --output SPEC ARGS...` with the shared cache,
/// under a policy granting the component (known as `inspect`) the
/// `wasi:sockets` imports CPython brings (its socket calls stay denied).
fn export_with(spec: &str, args: &[&str]) -> Run {
    let built = python_exporter();
    let policy = built.dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[components.inspect]\nimports = [\"wasi:sockets\"]\n",
    )
    .unwrap();
    let sample = sample_image();
    let mut all = vec!["export", path_str(&sample), "--output", spec];
    all.extend_from_slice(&["--policy", path_str(&policy)]);
    all.extend_from_slice(args);
    outport_with_cache(all, &built.cache, &[])
}

#[test]
fn python_exporter_without_a_grant_for_its_socket_imports_is_refused() {
    let tmp = tempdir();
    let dest = tmp.path().join("report.json");
    let sample = sample_image();
    let spec = by_path(&dest, "id=py");
    let run = outport_with_cache(
        ["export", path_str(&sample), "--output", &spec],
        &python_exporter().cache,
        &[],
    );
    run.assert_code(2);
    run.assert_error(&["wasi:sockets/"], &["does not grant"]);
    assert!(
        run.error_text().contains("imports = [\"wasi:sockets\"]"),
        "the error says how to grant it\n{}",
        run.describe()
    );
    assert!(!dest.exists());
}

/// `type=wasm,component=<the Python exporter>,dest=DEST,EXTRA`.
fn by_path(dest: &Path, extra: &str) -> String {
    format!(
        "type=wasm,component={},dest={},{extra}",
        path_str(&python_exporter().component),
        path_str(dest)
    )
}

#[test]
fn python_exporter_reports_what_skopeo_inspect_sees() {
    let tmp = tempdir();
    let dest = tmp.path().join("report.json");
    let metadata = tmp.path().join("metadata.json");
    let run = export_with(
        &by_path(&dest, "id=py"),
        &["--metadata-file", path_str(&metadata)],
    );
    run.assert_success();
    assert!(
        run.stderr.contains("[py] inspected 2 image(s)"),
        "the guest's log line is shown\n{}",
        run.describe()
    );

    let report = read_json(&dest);
    let entries = report.as_array().expect("a JSON list");
    let platforms: Vec<&str> = entries.iter().map(|e| str_at(e, "Platform")).collect();
    assert_eq!(platforms, sample_platforms());

    let layout = LayoutFiles::from_dir(&sample_image());
    let sample = sample_image();
    for entry in entries {
        let platform: Vec<&str> = str_at(entry, "Platform").split('/').collect();
        let mut args = vec![
            "inspect",
            "--override-os",
            platform[0],
            "--override-arch",
            platform[1],
        ];
        if let Some(variant) = platform.get(2) {
            args.extend(["--override-variant", *variant]);
            assert_eq!(entry["Variant"], *variant);
        } else {
            assert!(entry.get("Variant").is_none(), "{entry}");
        }
        let dir = oci_dir(&sample);
        args.push(&dir);
        let skopeo = skopeo_json(&args);
        for key in [
            "Digest",
            "Created",
            "Labels",
            "Architecture",
            "Os",
            "Layers",
            "Env",
        ] {
            assert_eq!(entry[key], skopeo[key], "{key} of {platform:?}");
        }

        let descriptor = layout.manifest_descriptor(platform[1]);
        assert_eq!(entry["ManifestDigest"], descriptor["digest"]);
        let manifest = layout.blob_json(str_at(&descriptor, "digest"));
        let layers = array_at(&manifest, "layers");
        let data = array_at(entry, "LayersData");
        assert_eq!(data.len(), layers.len());
        for (got, layer) in data.iter().zip(layers) {
            assert_eq!(got["MIMEType"], layer["mediaType"]);
            assert_eq!(got["Digest"], layer["digest"]);
            assert_eq!(got["Size"], layer["size"]);
        }
    }

    assert_metadata_valid(&metadata);
    let metadata = read_json(&metadata);
    let response = &exporter_entry(&metadata, "py")["response"];
    assert_eq!(
        response["containerimage.digest"], entries[0]["Digest"],
        "{metadata:#}"
    );
    assert_eq!(
        response["inspect.platforms"],
        Value::from(sample_platforms().join(","))
    );
}

#[test]
fn python_exporter_options_and_plugin_name() {
    let built = python_exporter();
    let tmp = tempdir();
    let dest = tmp.path().join("arm64.json");
    let spec = format!(
        "type=inspect,platform=linux/arm64,pretty=false,mode=0640,dest={}",
        path_str(&dest)
    );
    export_with(&spec, &["--plugin-dir", path_str(&built.dir)]).assert_success();
    let text = std::fs::read_to_string(&dest).unwrap();
    assert_eq!(text.lines().count(), 1, "pretty=false gives one line");
    let report = parse_json("report", text.as_bytes());
    let platforms: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_at(e, "Platform"))
        .collect();
    assert_eq!(platforms, ["linux/arm64/v8"]);
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640, "mode= set through files.set-mode");

    // Listed as a plugin, with the options its describe() returns.
    assert_plugin_listed(
        &built.listing,
        "inspect",
        &built.component,
        &["platform", "pretty", "mode"],
    );
}

#[test]
fn python_exporter_errors_name_the_option_and_write_nothing() {
    let tmp = tempdir();
    let dest = tmp.path().join("report.json");
    for (extra, mentions) in [
        ("platform=linux/s390x", ["linux/s390x", "linux/amd64"]),
        ("colour=red", ["colour", "unknown option"]),
        ("mode=9", ["mode", "octal"]),
        ("pretty=yes", ["pretty", "true or false"]),
    ] {
        let run = export_with(&by_path(&dest, &format!("id=py,{extra}")), &[]);
        run.assert_code(1);
        let error = run.error_text();
        assert!(error.contains("instance \"py\""), "{}", run.describe());
        for m in mentions {
            assert!(error.contains(m), "{m}\n{}", run.describe());
        }
        assert_eq!(dir_names(tmp.path()), Vec::<String>::new(), "{extra}");
    }
}

#[test]
fn compiling_the_python_exporter_stops_at_the_policy_compile_limits() {
    // Compiling CPython takes many seconds and far more than 64 MiB, so
    // each limit stops it; the fresh cache of `outport` holds nothing.
    let component = &python_exporter().component;
    for (limit, message) in [
        ("compile-timeout-seconds = 1", "time limit of 1 s exceeded"),
        (
            "compile-memory-bytes = 67108864",
            "memory limit of 67108864 bytes exceeded",
        ),
    ] {
        let tmp = tempdir();
        let policy = tmp.path().join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "[components.inspect]\nimports = [\"wasi:sockets\"]\n\
                 [components.inspect.limits]\n{limit}\n"
            ),
        )
        .unwrap();
        let out = mkdir(tmp.path(), "out");
        let spec = by_path(&out.join("report.json"), "id=py");
        let good = format!("type=oci,dest={}", path_str(&out.join("good.tar")));
        let sample = sample_image();
        let run = outport([
            "export",
            path_str(&sample),
            "--output",
            &spec,
            "--output",
            &good,
            "--policy",
            path_str(&policy),
        ]);
        run.assert_code(2);
        run.assert_error(&["compiling", path_str(component)], &[message]);
        assert_eq!(dir_names(&out), Vec::<String>::new(), "{limit}");
    }
}
