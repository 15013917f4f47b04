//! Guest text reaches the terminal as one escaped line: response values in
//! the summary too (log lines, stdio and errors: `sandbox::guest_text_*`).

use super::Work;

#[test]
fn a_response_value_cannot_forge_summary_lines_or_escape_sequences() {
    let run = Work::new().run("forge-response", &[], &["bad.txt"]);
    run.assert_success();
    let stdout = run.stdout_text();
    assert!(!stdout.contains('\x1b'), "{stdout}");
    assert!(!stdout.contains('\x07'), "{stdout}");
    assert!(
        !stdout
            .lines()
            .any(|l| l.contains("-> forged") && l.starts_with("ok       [good]")),
        "forged line:\n{stdout}"
    );
    assert!(stdout.contains("sha256:0\\nok"), "{stdout}");
}

#[test]
fn guest_text_cannot_forge_lines_or_reach_the_terminal_raw() {
    let run = Work::new().run("forge-log", &[], &[]);
    run.assert_code(1);
    assert!(!run.stderr.contains('\x1b'), "{}", run.stderr);
    assert!(!run.stderr.contains('\x07'), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(
            !line.trim_start().starts_with("[good] error: forged"),
            "forged line: {line}"
        );
    }
    assert!(
        run.stderr.contains("\\n[good] error: forged"),
        "{}",
        run.stderr
    );
}
