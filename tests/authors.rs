//! For exporter authors: the example exporter (`examples/hello-exporter`)
//! builds alone and runs as `type=wasm`, and the built-in exporters' doc
//! pages (`docs/exporters/NAME.md`) list exactly the options their
//! `describe()` returns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::*;

/// Builds `examples/hello-exporter` for wasm32-wasip2 (once per test run)
/// and returns the component's path.
pub(crate) fn hello_component() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_component(
            &repo_root().join("examples/hello-exporter"),
            "hello_exporter",
        )
    })
}

/// Builds the exporter crate in `crate_dir` for wasm32-wasip2, in a target
/// directory of its own (never the outer cargo's, whose lock the running
/// tests hold; shared by the exporters built here, so the SDK builds once),
/// and returns the component `NAME.wasm`.
fn build_component(crate_dir: &Path, wasm_name: &str) -> PathBuf {
    let target_dir = repo_root().join("target/hello-exporter");
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(crate_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building {} failed:\n{}",
        crate_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target_dir.join(format!("wasm32-wasip2/release/{wasm_name}.wasm"));
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    wasm
}

/// Runs the component on the sample image, writing `dest`, with the extra
/// options `extra` (`KEY=VALUE,...`).
pub(crate) fn export_sample(
    component: &Path,
    dest: &Path,
    extra: &str,
    metadata: Option<&Path>,
) -> Run {
    let spec = format!(
        "type=wasm,component={},dest={},{extra}",
        path_str(component),
        path_str(dest)
    );
    export(sample_image().as_os_str(), &[spec], metadata)
}

/// The image manifests reachable from the sample's `index.json`, with their
/// platforms, as the sample's own files say (attestations left out).
fn sample_manifests(layout: &LayoutFiles, index: &Value, out: &mut Vec<(Value, String)>) {
    for entry in array_at(index, "manifests") {
        let media_type = str_at(entry, "mediaType");
        if media_type.ends_with("image.index.v1+json") {
            let nested = layout.blob_json(str_at(entry, "digest"));
            sample_manifests(layout, &nested, out);
        } else if entry.pointer("/annotations/vnd.docker.reference.type")
            != Some(&Value::from("attestation-manifest"))
        {
            out.push((entry.clone(), platform_string(&entry["platform"])));
        }
    }
}

#[test]
fn hello_exporter_summarizes_the_sample() {
    let component = hello_component();
    let tmp = tempdir();
    let dest = tmp.path().join("summary.json");
    let metadata = tmp.path().join("metadata.json");
    let run = export_sample(component, &dest, "title=sample,id=hello", Some(&metadata));
    run.assert_success();
    let summary = read_json(&dest);
    assert_eq!(summary["title"], "sample");

    let layout = LayoutFiles::from_dir(&sample_image());
    let index = layout.index_json();
    let root = &array_at(&index, "manifests")[0];
    assert_eq!(summary["root"]["digest"], root["digest"]);
    assert_eq!(summary["root"]["size"], root["size"]);

    let mut expected = Vec::new();
    sample_manifests(&layout, &index, &mut expected);
    let platforms: Vec<&str> = expected.iter().map(|(_, p)| p.as_str()).collect();
    let got_platforms: Vec<&str> = array_at(&summary, "platforms")
        .iter()
        .map(|p| p.as_str().expect("platform string"))
        .collect();
    assert_eq!(got_platforms, platforms);
    assert_eq!(got_platforms, sample_platforms());

    let manifests = array_at(&summary, "manifests");
    assert_eq!(manifests.len(), expected.len());
    let mut blobs = BTreeMap::new();
    for (got, (entry, platform)) in manifests.iter().zip(&expected) {
        let digest = str_at(entry, "digest");
        assert_eq!(got["digest"], entry["digest"]);
        assert_eq!(got["size"], entry["size"]);
        assert_eq!(got["platform"], platform.as_str());
        blobs.insert(digest.to_owned(), entry["size"].as_u64().unwrap());
        let manifest = layout.blob_json(digest);
        assert_eq!(got["config"]["digest"], manifest["config"]["digest"]);
        assert_eq!(got["config"]["size"], manifest["config"]["size"]);
        let mut image_size = manifest["config"]["size"].as_u64().unwrap();
        blobs.insert(str_at(&manifest["config"], "digest").to_owned(), image_size);
        let layers = array_at(&manifest, "layers");
        let got_layers = array_at(got, "layers");
        assert_eq!(got_layers.len(), layers.len());
        for (g, l) in got_layers.iter().zip(layers) {
            assert_eq!(g["digest"], l["digest"]);
            assert_eq!(g["mediaType"], l["mediaType"]);
            assert_eq!(g["size"], l["size"]);
            image_size += l["size"].as_u64().unwrap();
            blobs.insert(str_at(l, "digest").to_owned(), l["size"].as_u64().unwrap());
        }
        assert_eq!(got["imageSize"], image_size);
        let config = layout.blob_json(str_at(&manifest["config"], "digest"));
        let labels = config
            .pointer("/config/Labels")
            .cloned()
            .unwrap_or_default();
        assert_eq!(got["labels"], labels);
        assert!(
            labels.as_object().is_some_and(|l| !l.is_empty()),
            "the sample's configs carry labels"
        );
    }
    let total: u64 = blobs.values().sum();
    assert_eq!(summary["totalSize"], total);

    let metadata = read_json(&metadata);
    let entry = exporter_entry(&metadata, "hello");
    assert_eq!(
        entry["response"]["hello.total-size"].as_str(),
        Some(total.to_string().as_str()),
        "{metadata:#}"
    );
}

#[test]
fn hello_exporter_rejects_unknown_options() {
    let component = hello_component();
    let tmp = tempdir();
    let dest = tmp.path().join("summary.json");
    let run = export_sample(component, &dest, "colour=blue", None);
    assert_ne!(run.code, Some(0), "{}", run.describe());
    assert!(run.error_text().contains("colour"), "{}", run.describe());
    assert!(!dest.exists());
}

/// `outport ARGS` (`exporters`, `cache backends`), parsed: component name →
/// option keys.
pub(crate) fn described_options(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let run = outport(args);
    run.assert_success();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = None;
    for line in run.stdout_text().lines() {
        if line.trim().is_empty() {
            continue;
        }
        let first = line.split_whitespace().next().unwrap().to_owned();
        if line.starts_with(char::is_whitespace) {
            let name: &String = current.as_ref().expect("an option line after a name line");
            out.get_mut(name).unwrap().insert(first);
        } else {
            out.insert(first.clone(), BTreeSet::new());
            current = Some(first);
        }
    }
    out
}

/// The option keys of a doc page: the first column of the table under its
/// `## Options` heading (`` | `KEY` | ... ``).
pub(crate) fn documented_options(page: &str) -> BTreeSet<String> {
    let section = page
        .split("\n## Options")
        .nth(1)
        .expect("an `## Options` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .map(|rest| rest.split('`').next().unwrap().to_owned())
        .collect()
}

#[test]
fn builtin_exporter_docs_match_describe() {
    let described = described_options(&["exporters"]);
    for name in ["oci", "docker", "tar", "local"] {
        assert!(
            described.contains_key(name),
            "outport exporters lists {name}"
        );
    }
    for (name, keys) in &described {
        let path = repo_root().join(format!("docs/exporters/{name}.md"));
        let page = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (every built-in needs a page)", path.display()));
        let documented = documented_options(&page);
        let missing: Vec<_> = keys.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(keys).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: options describe() has but the page lacks: {missing:?}; \
             options the page lists but describe() lacks: {extra:?}",
            path.display()
        );
    }
}

/// `outport new ARGS...` (which takes no `--cache-dir`, unlike [`outport`]).
fn outport_new(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_outport"))
        .arg("new")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the outport binary");
    Run {
        args: args.iter().map(Into::into).collect(),
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn new_exporter_scaffolds_a_project_that_builds_and_runs() {
    let tmp = tempdir();
    let project = tmp.path().join("projects/my-exporter");
    let run = outport_new(&["exporter", "my-exporter", "--path", path_str(&project)]);
    run.assert_success();
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        ".gitignore",
        "rust-toolchain.toml",
    ] {
        assert!(project.join(file).is_file(), "{file} was not created");
    }
    let cargo_toml = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(cargo_toml.contains("[workspace]"), "{cargo_toml}");
    let sdk = std::fs::canonicalize(repo_root().join("guests/sdk")).unwrap();
    assert!(cargo_toml.contains(path_str(&sdk)), "{cargo_toml}");

    // An existing directory is never overwritten.
    let again = outport_new(&["exporter", "my-exporter", "--path", path_str(&project)]);
    again.assert_code(2);
    assert!(
        again.error_text().contains("already exists"),
        "{}",
        again.describe()
    );

    let component = build_component(&project, "my_exporter");
    let dest = tmp.path().join("out.txt");
    let run = export_sample(&component, &dest, "greeting=hi", None);
    run.assert_success();
    let text = std::fs::read_to_string(&dest).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("hi"));
    let platforms: Vec<String> = lines
        .map(|l| l.split_once(' ').expect("digest platform").1.to_owned())
        .collect();
    assert_eq!(platforms, sample_platforms());
}

/// A component built against contract 0.1.0 (its WIT frozen in the test
/// program) runs unchanged on this runtime, which implements a later
/// 0.1.x: wasmtime links an import of `@0.1.0` to the newer `@0.1.x`
/// interfaces, whose additions it simply does not call.
#[test]
fn a_component_built_against_contract_0_1_0_still_runs() {
    let component = outport_test_programs::CONTRACT_0_1_0;
    let inspect = outport(["inspect", component]);
    inspect.assert_success();
    let text = inspect.stdout_text();
    assert!(text.contains("contract version: 0.1.0"), "{text}");
    assert!(text.contains("outport:exporter/image@0.1.0"), "{text}");
    assert!(!text.contains("not granted"), "{text}");

    let tmp = tempdir();
    let input = single_platform_sample(tmp.path(), "input", "amd64", "latest");
    let files = LayoutFiles::from_dir(&input);
    let manifest = files.blob_json(str_at(&files.root(), "digest"));
    let mut expected = Vec::new();
    for layer in array_at(&manifest, "layers") {
        expected.extend_from_slice(files.blob(str_at(layer, "digest")));
    }
    assert!(!expected.is_empty());

    let dest = tmp.path().join("layers.bin");
    let metadata = tmp.path().join("metadata.json");
    let spec = format!(
        "type=wasm,component={component},id=old,dest={}",
        path_str(&dest)
    );
    export(input.as_os_str(), &[spec], Some(&metadata)).assert_success();
    assert_eq!(std::fs::read(&dest).unwrap(), expected);
    let entry = exporter_entry(&read_json(&metadata), "old").clone();
    assert_eq!(entry["response"]["test.contract"], "0.1.0", "{entry}");
    let layers = array_at(&manifest, "layers").len().to_string();
    assert_eq!(entry["response"]["test.layers"], layers.as_str(), "{entry}");
}
