//! What a component imports and reaches: `wasi:sockets` and `wasi:http`
//! without `network-hosts` are refused before anything runs, a request to
//! a host outside them is denied by the host, and `outport inspect` shows
//! a component's identity and imports.

use super::*;

#[test]
fn a_component_importing_sockets_is_refused_before_it_runs() {
    let run = Work::new().refused(
        &format!(
            "type=wasm,component={},id=dial",
            outport_test_programs::DIALER
        ),
        &[],
    );
    run.assert_error(&["wasi:sockets/"], &["does not grant"]);
}

/// Runs the fetcher component (`GET http://127.0.0.1:9/` through
/// `wasi:http`) beside a good `oci` output, with `extra` arguments.
fn run_fetcher(work: &Work, extra: &[&str]) -> Run {
    let mut args = vec![
        "export".to_string(),
        path_str(&sample_image()).to_string(),
        "--output".to_string(),
        format!(
            "type=wasm,component={},id=fetch,target=127.0.0.1:9",
            outport_test_programs::FETCHER
        ),
        "--output".to_string(),
        format!(
            "type=oci,dest={},id=good",
            path_str(&work.out.join("good.tar"))
        ),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    outport(args)
}

#[test]
fn a_component_importing_http_without_network_hosts_is_refused_before_it_runs() {
    let work = Work::new();
    let run = run_fetcher(&work, &[]);
    run.assert_code(2);
    run.assert_error(&["wasi:http/"], &["does not grant"]);
    assert_eq!(dir_names(&work.out), vec!["sentinel".to_string()]);
}

#[test]
fn a_request_to_a_host_outside_network_hosts_is_denied_by_the_host() {
    let work = Work::new();
    let policy =
        work.policy("[components.outport_test_fetcher]\nnetwork-hosts = [\"127.0.0.1:1\"]\n");
    let run = run_fetcher(&work, &["--policy", path_str(&policy)]);
    run.assert_code(1);
    run.assert_error(&["fetch"], &["HttpRequestDenied"]);
    assert!(
        run.error_text().contains("127.0.0.1:9"),
        "{}",
        run.describe()
    );
    let good = format!("oci-archive:{}", path_str(&work.out.join("good.tar")));
    let index = skopeo_json(&["inspect", "--raw", &good]);
    assert!(index["manifests"].is_array(), "{index}");
}

/// Runs `outport inspect COMPONENT`, checks it succeeded and prints each of
/// `lines`; returns its output.
fn assert_inspect_shows(component: &str, lines: &[&str]) -> String {
    let run = outport(["inspect", component]);
    run.assert_success();
    let text = run.stdout_text();
    for line in lines {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    text
}

#[test]
fn inspect_prints_a_components_identity() {
    let oci = outport::EXPORTERS[0].wasm;
    let text = assert_inspect_shows(
        "oci",
        &[
            &format!("digest: {}", sha256_digest(oci)),
            &format!("size: {} bytes", oci.len()),
            "world: outport:exporter/exporter",
            "contract version: 0.1.3",
            "  outport:exporter/image@0.1.3\n",
            "  wasi:filesystem/preopens@",
        ],
    );
    assert!(!text.contains("not granted"), "{text}");

    let misbehave = fs::read(outport_test_programs::MISBEHAVE).unwrap();
    assert_inspect_shows(
        outport_test_programs::MISBEHAVE,
        &[
            &format!("digest: {}", sha256_digest(&misbehave)),
            "world: outport:exporter/exporter",
            "  export\n",
        ],
    );
    let dialer = assert_inspect_shows(outport_test_programs::DIALER, &["contract version: 0.1.3"]);
    assert!(
        dialer
            .lines()
            .any(|l| l.contains("wasi:sockets/tcp@") && l.contains("not granted")),
        "{dialer}"
    );
}
