//! Each limit of the policy stops a hostile component alone, naming the
//! limit: output, memory, time (also while it waits in a host call), fuel,
//! handles, instances, tables, the stack, responses, log lines, and
//! compiling.

use super::*;

#[test]
fn an_output_flood_stops_at_the_policy_output_limit() {
    Work::new().fails(
        "flood",
        "[components.outport_test_misbehave.limits]\noutput-bytes = 1048576\n",
        "output limit of 1048576 bytes exceeded",
    );
}

#[test]
fn the_policy_memory_limit_applies() {
    Work::new().fails(
        "grow-memory",
        "[limits]\nmemory-bytes = 67108864\n",
        "memory limit of 67108864 bytes",
    );
}

#[test]
fn the_policy_time_limit_applies() {
    Work::new().fails(
        "loop",
        "[components.outport_test_misbehave.limits]\ntimeout-seconds = 1\n",
        "time limit of 1 s",
    );
}

#[test]
fn the_policy_destination_rule_applies() {
    Work::new().fails(
        "ok",
        "[components.outport_test_misbehave]\ndestination = \"directory\"\n",
        "only a directory destination",
    );
}

#[test]
fn the_policy_fuel_limit_applies() {
    Work::new().fails(
        "loop",
        &misbehave_limits("fuel = 1000000"),
        "fuel limit of 1000000 exceeded",
    );
}

#[test]
fn a_resource_bomb_stops_at_the_resources_limit() {
    Work::new().fails(
        "resource-bomb",
        &misbehave_limits("resources = 500"),
        "resources limit of 500 handles exceeded",
    );
}

#[test]
fn an_instances_limit_below_what_a_component_needs_fails_it_alone() {
    // A Rust component instantiates several core instances (its module
    // and wit-component's shims); with room for one it cannot start.
    Work::new().fails(
        "ok",
        &misbehave_limits("instances = 1"),
        "instantiation: instances limit of 1 exceeded",
    );
}

#[test]
fn a_stack_overflow_is_named() {
    Work::new().fails("stack-overflow", "", "stack overflow");
}

#[test]
fn an_oversized_response_is_refused_by_the_response_limit() {
    Work::new().fails(
        "response-key",
        "",
        "response limit of 1048576 bytes exceeded",
    );
}

#[test]
fn a_table_bomb_stops_at_the_table_limit() {
    let digest = sha256_digest(&fs::read(outport_test_programs::TABLE_BOMB).unwrap());
    let bad = format!(
        "type=wasm,component={},id=bad",
        outport_test_programs::TABLE_BOMB
    );
    // The default is also the most the engine's slots hold (a policy
    // asking for more is refused when read).
    for (policy, limit) in [("table-elements = 5000", 5000), ("", 20000)] {
        let work = Work::new();
        let policy = work.policy(&format!("[components.\"{digest}\".limits]\n{policy}\n"));
        let run = work.run_output(&bad, &["--policy", path_str(&policy)], &[], outport);
        run.assert_code(1);
        run.assert_error(
            &["instance \"bad\""],
            &[&format!("table limit of {limit} elements exceeded")],
        );
    }
}

#[test]
fn a_table_too_large_at_start_is_refused_before_anything_runs() {
    let run = Work::new().refused(
        &format!(
            "type=wasm,component={},id=bad",
            outport_test_programs::TABLE_AT_START
        ),
        &[],
    );
    run.assert_error(
        &[outport_test_programs::TABLE_AT_START],
        &["minimum element size of 1000000 which exceeds the limit of 20000"],
    );
}

#[test]
fn compiling_a_component_is_bounded_in_memory_and_time() {
    for (limit, message) in [
        (
            "compile-memory-bytes = 16777216",
            "memory limit of 16777216 bytes exceeded",
        ),
        ("compile-timeout-seconds = 0", "time limit of 0 s exceeded"),
    ] {
        let work = Work::new();
        let policy = work.policy(&misbehave_limits(limit));
        let run = outport([
            "export",
            path_str(&sample_image()),
            "--output",
            &format!(
                "type=wasm,component={},dest={}",
                outport_test_programs::MISBEHAVE,
                path_str(&work.out.join("bad.txt"))
            ),
            "--policy",
            path_str(&policy),
        ]);
        run.assert_code(2);
        run.assert_error(&["compiling", "outport_test_misbehave"], &[message]);
        assert_eq!(dir_names(&work.out), vec!["sentinel".to_string()]);
    }
}

#[test]
fn log_lines_stop_at_the_policy_log_limit() {
    let work = Work::new();
    let policy = work.policy(&misbehave_limits("log-bytes = 200"));
    let run = work.run(
        "log-flood",
        &["--progress", "plain", "--policy", path_str(&policy)],
        &["bad.txt"],
    );
    run.assert_success();
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[bad]") && l.contains("line "))
        .collect();
    // "line N" is 6 to 11 bytes: 200 bytes hold at most 34 of them.
    assert!(
        !lines.is_empty() && lines.len() <= 34,
        "{} log lines:\n{}",
        lines.len(),
        run.describe()
    );
    assert!(
        run.stderr.contains("log limit reached"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_guest_waiting_in_a_host_call_is_stopped_by_the_time_limit() {
    let started = std::time::Instant::now();
    let work = Work::new();
    let run = work.run("sleep", &["--timeout", "2"], &[]);
    run.assert_code(1);
    run.assert_error(&["instance \"bad\""], &["time limit of 2 s exceeded"]);
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}
