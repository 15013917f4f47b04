//! `oci` exports as runs: to standard output, twice the same, over an
//! existing directory, from a docker-save input, beside a failing
//! instance; and `outport exporters` listing it.

use super::*;

#[test]
fn dest_dash_writes_the_tarball_to_stdout() {
    let tmp = tempdir();
    let run = export(
        sample_image().as_os_str(),
        &["type=oci,dest=-".to_owned()],
        None,
    );
    run.assert_success();
    assert!(
        !run.stdout.is_empty(),
        "nothing on stdout\n{}",
        run.describe()
    );

    let files = LayoutFiles::from_tar_bytes(&run.stdout);
    files.verify();
    assert_eq!(files.root()["digest"], sample_root()["digest"]);

    let saved = tmp.path().join("stdout.tar");
    fs::write(&saved, &run.stdout).expect("save stdout");
    let raw = skopeo_json(&["inspect", "--raw", &oci_archive(&saved)]);
    assert_eq!(index_platforms(&raw), sample_platforms());
}

#[test]
fn exporting_twice_gives_identical_tarballs() {
    let tmp = tempdir();
    let first = tmp.path().join("first.tar");
    let second = tmp.path().join("second.tar");
    for dest in [&first, &second] {
        export(
            sample_image().as_os_str(),
            &[format!("type=oci,dest={}", path_str(dest))],
            None,
        )
        .assert_success();
    }
    let first = fs::read(&first).expect("read the first tarball");
    let second = fs::read(&second).expect("read the second tarball");
    assert!(
        first == second,
        "two exports of the same image differ ({} and {} bytes)",
        first.len(),
        second.len()
    );
}

#[test]
fn tar_false_replaces_an_existing_directory() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let dest = mkdir(&out, "layout");
    fs::write(dest.join("stale.txt"), "from an earlier run").expect("write");
    fs::write(dest.join("index.json"), "{}").expect("write");
    mkdir(&dest, "blobs/sha256");
    fs::write(dest.join("blobs/sha256/0000"), "stale").expect("write");

    let run = export(
        sample_image().as_os_str(),
        &[format!("type=oci,tar=false,dest={}", path_str(&dest))],
        None,
    );
    run.assert_success();
    assert_eq!(dir_names(&out), ["layout"]);
    assert!(
        !dest.join("stale.txt").exists(),
        "the old directory's files remain"
    );
    assert!(
        !dest.join("blobs/sha256/0000").exists(),
        "the old directory's blobs remain"
    );
    let files = LayoutFiles::from_dir(&dest);
    files.verify();
    assert_eq!(
        files.blob_digests(),
        LayoutFiles::from_dir(&sample_image()).blob_digests()
    );
    skopeo_json(&["inspect", "--raw", &oci_dir(&dest)]);
}

#[test]
fn docker_save_input() {
    let tmp = tempdir();
    let input = tmp.path().join("docker-save.tar");
    let saved = docker_save_tar("amd64", &input);
    let dest = tmp.path().join("image.tar");
    let metadata = tmp.path().join("metadata.json");

    let run = export(
        input.as_os_str(),
        &[format!("type=oci,dest={}", path_str(&dest))],
        Some(&metadata),
    );
    run.assert_success();

    let files = LayoutFiles::from_tar(&dest);
    files.verify();
    let root = files.root();
    let manifest = files.blob_json(str_at(&root, "digest"));
    assert_eq!(
        manifest["config"]["digest"],
        saved.config_digest.as_str(),
        "{manifest}"
    );
    assert_eq!(
        array_at(&manifest, "layers").len(),
        saved.diff_ids.len(),
        "{manifest}"
    );

    let image = skopeo_json(&["inspect", &oci_archive(&dest)]);
    assert_eq!(image["Architecture"], "amd64", "{image}");
    assert_eq!(array_at(&image, "Layers").len(), 2, "{image}");
    skopeo_copy_all(
        &oci_archive(&dest),
        &oci_dir_ref(&tmp.path().join("copy"), "copied"),
    );

    let metadata = read_json(&metadata);
    let response = &exporter_entry(&metadata, "0")["response"];
    assert_eq!(
        response["containerimage.digest"], root["digest"],
        "{metadata:#}"
    );
    assert_eq!(
        response["containerimage.config.digest"],
        saved.config_digest.as_str(),
        "{metadata:#}"
    );
}

#[test]
fn one_failing_instance_leaves_the_other_intact() {
    let tmp = tempdir();
    let out = mkdir(tmp.path(), "out");
    let good = out.join("good.tar");
    // A destination inside a regular file cannot be written.
    let blocker = tmp.path().join("blocker");
    fs::write(&blocker, "not a directory").expect("write");
    let bad = blocker.join("bad.tar");
    let metadata = tmp.path().join("metadata.json");

    let run = export(
        sample_image().as_os_str(),
        &[
            format!("type=oci,dest={},id=good", path_str(&good)),
            format!("type=oci,dest={},id=bad", path_str(&bad)),
        ],
        Some(&metadata),
    );
    run.assert_code(1);
    assert!(
        run.error_text().contains("bad"),
        "the error should name the failed instance\n{}",
        run.describe()
    );

    assert_eq!(dir_names(&out), ["good.tar"]);
    skopeo_json(&["inspect", "--raw", &oci_archive(&good)]);
    assert_eq!(
        fs::read_to_string(&blocker).expect("read"),
        "not a directory"
    );

    let metadata = read_json(&metadata);
    let ok = exporter_entry(&metadata, "good");
    assert_eq!(ok["status"], "ok", "{metadata:#}");
    let failed = exporter_entry(&metadata, "bad");
    assert_eq!(failed["status"], "failed", "{metadata:#}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a failed instance says why: {metadata:#}"
    );
    assert_eq!(
        metadata["containerimage.digest"], ok["response"]["containerimage.digest"],
        "{metadata:#}"
    );
}

#[test]
fn exporters_lists_the_oci_exporter() {
    let run = outport(["exporters"]);
    run.assert_success();
    let stdout = run.stdout_text();
    for word in ["oci", "tar", "name", "annotation"] {
        assert!(
            stdout.contains(word),
            "`outport exporters` should mention {word:?}\n{}",
            run.describe()
        );
    }
}
