//! Where the input comes from: skopeo's transport names (`oci:`,
//! `oci-archive:`, `docker-archive:`), standard input (`-`, spooled whole
//! before anything is written) and what is refused (an unknown transport,
//! a truncated or foreign stream).

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Stdio;

use crate::common::*;

/// `outport export INPUT --output SPEC...` with `stdin` as standard input.
fn export_from(stdin: Option<&Path>, input: &str, outputs: &[String]) -> Run {
    let cache = tempdir();
    let mut args: Vec<OsString> = vec!["export".into(), input.into()];
    for spec in outputs {
        args.push("--output".into());
        args.push(spec.into());
    }
    run_outport(args, |command| {
        command.arg("--cache-dir").arg(cache.path());
        if let Some(path) = stdin {
            let file =
                fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            command.stdin(Stdio::from(file));
        }
    })
}

/// The sample as an OCI archive at `parent/name`.
fn sample_archive(parent: &Path, name: &str) -> std::path::PathBuf {
    let path = parent.join(name);
    pack_tar(&sample_image(), &path, None);
    path
}

#[test]
fn stdin_oci_archive_exports_as_the_file_does() {
    let tmp = tempdir();
    let archive = sample_archive(tmp.path(), "sample.tar");
    let from_file = tmp.path().join("from-file");
    let from_stdin = tmp.path().join("from-stdin");
    export_from(
        None,
        &oci_archive(&archive),
        &[format!("type=oci,tar=false,dest={}", path_str(&from_file))],
    )
    .assert_success();
    export_from(
        Some(&archive),
        "-",
        &[format!("type=oci,tar=false,dest={}", path_str(&from_stdin))],
    )
    .assert_success();
    let (a, b) = (
        LayoutFiles::from_dir(&from_file),
        LayoutFiles::from_dir(&from_stdin),
    );
    assert_eq!(a.files, b.files, "the same image, byte for byte");
    skopeo_json(&["inspect", "--raw", &oci_dir(&from_stdin)]);
}

#[test]
fn stdin_docker_save_unpacks_a_rootfs() {
    let tmp = tempdir();
    let save = tmp.path().join("save.tar");
    docker_save_tar("amd64", &save);
    let rootfs = tmp.path().join("rootfs");
    let run = export_from(
        Some(&save),
        "-",
        &[format!("type=local,dest={}", path_str(&rootfs))],
    );
    run.assert_success();
    assert!(!dir_names(&rootfs).is_empty(), "{}", run.describe());
}

#[test]
fn stdin_to_stdout_is_fine() {
    let tmp = tempdir();
    let archive = sample_archive(tmp.path(), "sample.tar");
    let run = export_from(Some(&archive), "-", &["type=oci,dest=-".to_owned()]);
    run.assert_success();
    let files = LayoutFiles::from_tar_bytes(&run.stdout);
    files.verify();
}

#[test]
fn truncated_or_foreign_stdin_writes_nothing() {
    let tmp = tempdir();
    let archive = sample_archive(tmp.path(), "sample.tar");
    let bytes = fs::read(&archive).unwrap();
    let cut = tmp.path().join("cut.tar");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let junk = tmp.path().join("junk");
    fs::write(&junk, noise(4096)).unwrap();
    let empty = tmp.path().join("empty");
    fs::write(&empty, b"").unwrap();
    for (stdin, words) in [
        (&cut, &["truncated", "ends at", "file ended"][..]),
        (&junk, &["not an image"][..]),
        (&empty, &["not an image"][..]),
    ] {
        let out = tmp.path().join("out");
        let run = export_from(
            Some(stdin),
            "-",
            &[format!("type=oci,tar=false,dest={}", path_str(&out))],
        );
        run.assert_code(1);
        run.assert_error(&["-"], words);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert_empty_or_absent(&out);
    }
}

#[test]
fn transports_name_the_input() {
    let tmp = tempdir();
    let archive = sample_archive(tmp.path(), "sample.tar");
    let save = tmp.path().join("save.tar");
    docker_save_tar("arm64", &save);
    for (n, input) in [
        oci_dir(&sample_image()),
        oci_archive(&archive),
        format!("docker-archive:{}", path_str(&save)),
        format!("docker-archive:{}:outport/sample:latest", path_str(&save)),
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{n}"));
        export_from(
            None,
            input,
            &[format!("type=oci,tar=false,dest={}", path_str(&out))],
        )
        .assert_success();
        LayoutFiles::from_dir(&out).verify();
    }
}

#[test]
fn unknown_transport_and_registry_are_usage_errors() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let spec = format!("type=oci,tar=false,dest={}", path_str(&out));
    for (input, words) in [
        (
            "xyz:thing",
            &[
                "unknown transport \"xyz:\"",
                "docker-daemon:NAME[:TAG|@DIGEST]",
            ][..],
        ),
        ("oci:", &["expected a path"][..]),
        (
            "docker-daemon:Not_A_Name",
            &["invalid repository path component"][..],
        ),
        (
            "docker://localhost:5000/Bad_Name:1",
            &["invalid repository path component"][..],
        ),
    ] {
        let run = export_from(None, input, std::slice::from_ref(&spec));
        run.assert_code(2);
        run.assert_error(&[input], words);
        assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
        assert_empty_or_absent(&out);
    }
}

#[test]
fn transport_of_the_wrong_kind_is_refused() {
    let tmp = tempdir();
    let archive = sample_archive(tmp.path(), "sample.tar");
    let out = tmp.path().join("out");
    let spec = format!("type=oci,tar=false,dest={}", path_str(&out));
    for (input, words) in [
        (
            oci_dir(&archive),
            "not a directory; oci: reads a layout directory",
        ),
        (
            oci_archive(&sample_image()),
            "a directory; oci-archive: reads a tar archive",
        ),
        (
            oci_archive(&tmp.path().join("nope.tar")),
            "no such file or directory",
        ),
    ] {
        let run = export_from(None, &input, std::slice::from_ref(&spec));
        run.assert_code(1);
        run.assert_error(
            &[
                path_str(&tmp.path().join("nope.tar")),
                path_str(&archive),
                path_str(&sample_image()),
            ],
            &[words],
        );
        assert_empty_or_absent(&out);
    }
}
