//! Plugins by name: `type=NAME` runs `NAME.wasm` from a plugin directory
//! (`--plugin-dir`, then `$OUTPORT_PLUGIN_DIR`) when NAME is not built in,
//! under the same pinning policy as `type=wasm,component=PATH`; built-ins
//! win; unknown and invalid names are usage errors naming what was
//! searched. The plugin is the hello-exporter example, built by
//! `authors::hello_component`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::authors::{export_sample, hello_component};
use crate::common::*;

/// Asserts that `run`, an `outport exporters`, lists the plugin `name`
/// from `path`, followed by exactly the option keys `options`.
#[track_caller]
pub(crate) fn assert_plugin_listed(run: &Run, name: &str, path: &Path, options: &[&str]) {
    run.assert_success();
    let stdout = run.stdout_text();
    let prefix = format!("{name} ");
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(&prefix));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("{name} is listed\n{}", run.describe()));
    let origin = format!("[plugin {}]", path_str(path));
    assert!(line.ends_with(&origin), "{line}");
    let listed: Vec<&str> = lines
        .take_while(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, options, "{}", run.describe());
}

/// A temporary directory with a plugin directory `plugins/` holding the
/// hello-exporter as `hello.wasm`, and `out/` for destinations.
struct Plugins {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    out: PathBuf,
}

impl Plugins {
    fn new() -> Plugins {
        let tmp = tempdir();
        let dir = mkdir(tmp.path(), "plugins");
        let out = mkdir(tmp.path(), "out");
        let plugins = Plugins { tmp, dir, out };
        plugins.add("hello");
        plugins
    }

    /// Copies the hello-exporter into the plugin directory as `NAME.wasm`.
    fn add(&self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.wasm"));
        fs::copy(hello_component(), &path).unwrap();
        path
    }

    /// `outport export SAMPLE --output SPEC ARGS...`, with `env`.
    fn export(&self, spec: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let sample = sample_image();
        let mut all = vec!["export", path_str(&sample), "--output", spec];
        all.extend_from_slice(args);
        let cache = self.tmp.path().join("cache");
        outport_with_cache(all, &cache, env)
    }

    /// A destination under `out/`.
    fn dest(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}

#[test]
fn a_plugin_runs_by_name_like_the_same_component_by_path() {
    let plugins = Plugins::new();
    let by_path = plugins.dest("by-path.json");
    export_sample(hello_component(), &by_path, "title=t", None).assert_success();

    let by_name = plugins.dest("by-name.json");
    let metadata = plugins.dest("metadata.json");
    let spec = format!("type=hello,id=h,title=t,dest={}", path_str(&by_name));
    let run = plugins.export(
        &spec,
        &[
            "--plugin-dir",
            path_str(&plugins.dir),
            "--metadata-file",
            path_str(&metadata),
        ],
        &[],
    );
    run.assert_success();
    assert_eq!(fs::read(&by_name).unwrap(), fs::read(&by_path).unwrap());
    let entry = exporter_entry(&read_json(&metadata), "h").clone();
    assert_eq!(entry["type"], "hello");
    assert_eq!(entry["status"], "ok");
    assert_metadata_valid(&metadata);

    // The default directory, from the environment, is searched too.
    let from_env = plugins.dest("from-env.json");
    let spec = format!("type=hello,title=t,dest={}", path_str(&from_env));
    let run = plugins.export(
        &spec,
        &[],
        &[("OUTPORT_PLUGIN_DIR", path_str(&plugins.dir))],
    );
    run.assert_success();
    assert_eq!(fs::read(&from_env).unwrap(), fs::read(&by_path).unwrap());
}

#[test]
fn a_pinning_policy_refuses_an_unpinned_plugin_and_runs_a_pinned_one() {
    let plugins = Plugins::new();
    let digest = sha256_digest(&fs::read(hello_component()).unwrap());
    let policy = plugins.tmp.path().join("policy.toml");
    fs::write(&policy, "allow-unpinned = false\n").unwrap();
    let dest = plugins.dest("summary.json");
    let spec = format!("type=hello,dest={}", path_str(&dest));
    let args = [
        "--plugin-dir",
        path_str(&plugins.dir),
        "--policy",
        path_str(&policy),
    ];

    let run = plugins.export(&spec, &args, &[]);
    run.assert_code(2);
    run.assert_error(&[&digest], &["not pinned"]);
    assert!(
        run.error_text().contains("hello.wasm"),
        "{}",
        run.describe()
    );
    assert_empty_or_absent(&plugins.out);

    // Pinned by digest; the entry by the plugin's name applies too.
    fs::write(
        &policy,
        format!(
            "allow-unpinned = false\n[components.\"{digest}\"]\n\
             [components.hello.limits]\noutput-bytes = 10\n"
        ),
    )
    .unwrap();
    let run = plugins.export(&spec, &args, &[]);
    run.assert_code(1);
    run.assert_error(&["output limit of 10 bytes"], &["exceeded"]);
    assert!(!dest.exists());

    fs::write(
        &policy,
        format!("allow-unpinned = false\n[components.\"{digest}\"]\n"),
    )
    .unwrap();
    plugins.export(&spec, &args, &[]).assert_success();
    assert!(read_json(&dest)["totalSize"].as_u64().is_some());
}

#[test]
fn an_unknown_type_names_the_builtins_and_the_directories_searched() {
    let plugins = Plugins::new();
    let second = mkdir(plugins.tmp.path(), "more-plugins");
    let env_dir = plugins.tmp.path().join("env-plugins");
    let dest = plugins.dest("x.json");
    let run = plugins.export(
        &format!("type=nosuch,dest={}", path_str(&dest)),
        &[
            "--plugin-dir",
            path_str(&plugins.dir),
            "--plugin-dir",
            path_str(&second),
        ],
        &[("OUTPORT_PLUGIN_DIR", path_str(&env_dir))],
    );
    run.assert_code(2);
    let error = run.error_text();
    for needle in [
        "\"nosuch\"",
        "nosuch.wasm",
        "oci, docker, tar, local",
        path_str(&plugins.dir),
        path_str(&second),
        path_str(&env_dir),
    ] {
        assert!(error.contains(needle), "{needle}\n{}", run.describe());
    }
    assert_eq!(error.lines().count(), 1, "{}", run.describe());
    assert_empty_or_absent(&plugins.out);

    // A --plugin-dir that is not a directory is a usage error.
    let missing = plugins.tmp.path().join("missing");
    let run = plugins.export("type=hello", &["--plugin-dir", path_str(&missing)], &[]);
    run.assert_code(2);
    run.assert_error(&[path_str(&missing)], &["not a directory"]);
}

#[test]
fn a_plugin_name_cannot_leave_its_directory() {
    let plugins = Plugins::new();
    // `inner/hello.wasm` and `../plugins/hello.wasm` exist, but neither is
    // a plugin name.
    let inner = mkdir(&plugins.dir, "inner");
    fs::copy(hello_component(), inner.join("hello.wasm")).unwrap();
    for kind in ["inner/hello", "../plugins/hello", "..", ".hidden"] {
        let dest = plugins.dest("x.json");
        let run = plugins.export(
            &format!("type={kind},dest={}", path_str(&dest)),
            &["--plugin-dir", path_str(&plugins.dir)],
            &[],
        );
        run.assert_code(2);
        run.assert_error(&[kind], &["not a valid plugin name"]);
        assert_empty_or_absent(&plugins.out);
    }
}

#[test]
fn builtins_win_over_plugins_of_the_same_name_with_a_warning() {
    let plugins = Plugins::new();
    let shadowing = plugins.add("oci");
    let dest = plugins.dest("image.tar");
    let run = plugins.export(
        &format!("type=oci,dest={}", path_str(&dest)),
        &["--plugin-dir", path_str(&plugins.dir)],
        &[],
    );
    run.assert_success();
    // The built-in oci exporter wrote an OCI layout tarball, not a summary.
    LayoutFiles::from_tar(&dest).verify();

    let cache = plugins.tmp.path().join("cache");
    let run = outport_with_cache(
        ["exporters", "--plugin-dir", path_str(&plugins.dir)],
        &cache,
        &[],
    );
    run.assert_success();
    assert_plugin_listed(
        &run,
        "hello",
        &plugins.dir.join("hello.wasm"),
        &["pretty", "title"],
    );
    let stdout = run.stdout_text();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("oci ")).count(),
        1,
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains(&format!(
            "warning: plugin {} is shadowed by the built-in exporter oci",
            path_str(&shadowing)
        )),
        "{}",
        run.describe()
    );
}
