//! Open-file descriptors, a resource the instances of a run share with the
//! host: the process's soft `RLIMIT_NOFILE` is raised to its hard limit
//! (as Go programs and most servers do at start), and each instance may hold
//! only its share of what is left after the host's reserve, so one
//! instance holding files open cannot make its siblings' opens fail.
//!
//! A guest's open files are handles in its resource table, so the share
//! caps the table's capacity (the policy's `resources` limit, lowered when
//! the share is smaller); an instance past it fails naming the share.

/// Descriptors kept for the host: the input's blob files, staging
/// directories and their locks, converted layers, HTTP connections.
const HOST_RESERVE: u64 = 256;

/// Descriptors kept per instance for what the host opens for it outside
/// its resource table (its staging directory and lock, a file being
/// placed, its HTTP connections).
const PER_INSTANCE_RESERVE: u64 = 16;

/// Fewest handles an instance is given, whatever the open-file limit (a
/// component needs a few to start: its streams, its destination).
const MIN_SHARE: u64 = 32;

/// The share of the open-file limit one instance of a run gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorShare {
    /// Handles the instance may hold at once.
    pub handles: usize,
    /// The process's (soft) open-file limit.
    pub open_files: u64,
    /// How many instances share it.
    pub instances: usize,
}

/// Raises the soft open-file limit to the hard limit (once per process is
/// enough; later calls change nothing) and returns the soft limit in force,
/// `None` when it is unlimited or cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current
}

/// Each of `instances` instances' share of an open-file limit of
/// `open_files` (see the module doc).
pub fn share(open_files: u64, instances: usize) -> DescriptorShare {
    let count = instances.max(1) as u64;
    let free = open_files.saturating_sub(HOST_RESERVE + PER_INSTANCE_RESERVE * count);
    let handles = (free / count).max(MIN_SHARE);
    DescriptorShare {
        handles: usize::try_from(handles).unwrap_or(usize::MAX),
        open_files,
        instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_split_after_the_hosts_reserve() {
        let one = share(1024, 1);
        assert_eq!(one.handles, 1024 - 256 - 16);
        let three = share(1024, 3);
        assert_eq!(three.handles, (1024 - 256 - 48) / 3);
        assert_eq!((three.open_files, three.instances), (1024, 3));
        // A tiny limit still leaves a component enough to start.
        assert_eq!(share(64, 8).handles, 32);
    }

    #[test]
    fn raising_keeps_the_soft_limit_at_most_the_hard_one() {
        let soft = raise_open_file_limit();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(soft, limit.current);
        assert_eq!(limit.current, limit.maximum);
    }
}
