//! Floods of guest memory, output and responses keep the host's own
//! memory bounded: the process's peak RSS stays under a baseline run's
//! plus the guest's limits.

use super::*;

#[test]
fn huge_responses_stop_at_the_transfer_limit_with_host_memory_bounded() {
    let work = Work::new();
    let base_rss = baseline_rss(&work);
    for action in ["response-entries", "response-values"] {
        fails_with_memory_bounded(&work, action, "", 128 << 20, base_rss, "transfer limit of");
    }
}

#[test]
fn memory_and_output_floods_keep_host_memory_bounded() {
    let work = Work::new();
    let base_rss = baseline_rss(&work);
    fails_with_memory_bounded(
        &work,
        "grow-memory",
        "",
        64 << 20,
        base_rss,
        "memory limit of 67108864 bytes exceeded",
    );
    fails_with_memory_bounded(
        &work,
        "flood",
        "output-bytes = 1048576",
        64 << 20,
        base_rss,
        "output limit of 1048576 bytes exceeded",
    );
}
