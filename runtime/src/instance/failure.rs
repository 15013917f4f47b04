//! Why an instance failed: a [`FailureKind`] with a stable code (which the
//! metadata file records next to the message) and one line saying what
//! happened, naming the limit and its value when a limit stopped it.

use std::fmt;

use wasmtime::Store;

use super::state::InstanceState;
use crate::host::bindings::types::Error as GuestError;
use crate::output::destination::PlaceError;
use crate::output::tree::TreeError;
use crate::sandbox::limits::{LimitReached, Limits};

/// Bytes a guest may pass to the host in one call (arguments of an import,
/// or the result of `export`), counted as wasmtime lifts them: above the
/// largest `put-blob`, far below what would strain the host. Strings
/// pointing at the same guest bytes are counted each time, so a response
/// cannot multiply guest memory into host memory.
pub const TRANSFER_LIMIT: usize = crate::host::image::MAX_INLINE_BLOB as usize + (1 << 20);

/// The kind of an instance's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A limit stopped it: the limit's name (`time`, `memory`, `table`,
    /// `instances`, `fuel`, `resources`, `descriptors`, `transfer`,
    /// `response`, `output`) and value.
    Limit {
        /// The limit's name.
        name: &'static str,
        /// Its value (seconds, bytes, elements, handles, entries).
        value: u64,
    },
    /// The guest trapped (a panic, a stack overflow, an invalid string).
    Trap,
    /// The guest returned an error, of this kind (`invalid-option`,
    /// `unsupported`, `io`, `network`, `limit`, `invalid-image`, `other`).
    Guest(&'static str),
    /// The guest left an output the host may not place (no file, a
    /// symlink, a special file, a tree too deep, an invalid cache).
    Output,
    /// A blob of the input was damaged and the guest went on.
    DamagedInput,
    /// The policy forbids what the component asked for.
    Policy,
    /// The destination's filesystem is full.
    NoSpace,
    /// The host could not do its part (staging, granting, placing,
    /// credentials).
    Host,
    /// The run cancelled it (`--fail-fast`), or its task ended abnormally.
    Cancelled,
}

impl FailureKind {
    /// The stable code of this kind: `limit.NAME`, `trap`, `guest.KIND`,
    /// `output`, `input.damaged`, `policy`, `no-space`, `host`, `cancelled`.
    pub fn code(&self) -> String {
        match self {
            FailureKind::Limit { name, .. } => format!("limit.{name}"),
            FailureKind::Trap => "trap".into(),
            FailureKind::Guest(kind) => format!("guest.{kind}"),
            FailureKind::Output => "output".into(),
            FailureKind::DamagedInput => "input.damaged".into(),
            FailureKind::Policy => "policy".into(),
            FailureKind::NoSpace => "no-space".into(),
            FailureKind::Host => "host".into(),
            FailureKind::Cancelled => "cancelled".into(),
        }
    }
}

/// An instance's failure: its kind and one line saying what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// One line (guest text in it escaped).
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A failure of the host's part.
    pub fn host(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Host, message)
    }

    /// Limit `name` of `value` stopped the instance.
    pub fn limit(name: &'static str, value: u64, message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Limit { name, value }, message)
    }

    /// The instance's time limit passed during `phase`.
    pub fn time(phase: &str, limits: &Limits) -> Failure {
        let seconds = limits.timeout.as_secs();
        Failure::limit(
            "time",
            seconds,
            format!("{phase}: time limit of {seconds} s exceeded"),
        )
    }

    /// The same failure, its message changed by `f`.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Failure {
        Failure {
            kind: self.kind,
            message: f(self.message),
        }
    }
}

/// The failure for an error the guest returned, in one line.
pub fn guest_error(e: GuestError) -> Failure {
    let (kind, message) = match e {
        GuestError::InvalidOption(m) => ("invalid-option", format!("invalid option: {m}")),
        GuestError::Unsupported(m) => ("unsupported", format!("unsupported: {m}")),
        GuestError::Io(m) => ("io", format!("I/O error: {m}")),
        GuestError::Network(m) => ("network", format!("network error: {m}")),
        GuestError::Limit(m) => ("limit", format!("limit exceeded: {m}")),
        GuestError::InvalidImage(m) => ("invalid-image", format!("invalid image: {m}")),
        GuestError::Other(m) => ("other", m),
    };
    Failure::new(FailureKind::Guest(kind), message)
}

/// The failure for an uncompressed view of a layer that failed when the
/// export of `phase` ended, after the guest returned (`error`, as a call
/// using the view would have had it; `hit`, the limit it reached, if one).
pub fn view_failure(phase: &str, error: GuestError, hit: Option<LimitReached>) -> Failure {
    let after = "(an uncompressed layer view, checked when the component returned; its output is discarded)";
    match (error, hit) {
        (GuestError::Limit(_), Some(hit)) => {
            Failure::limit(hit.name, hit.value, format!("{phase}: {}", hit.message))
        }
        (GuestError::InvalidImage(m), _) => {
            Failure::new(FailureKind::DamagedInput, format!("{m} {after}"))
        }
        (GuestError::Io(m), _) => Failure::host(format!("{phase}: {m} {after}")),
        (other, _) => guest_error(other),
    }
}

/// The failure for a trap or host error during `phase`, naming the limit
/// and its value when one stopped the guest.
pub fn trap(
    phase: &str,
    e: &wasmtime::Error,
    store: &Store<InstanceState>,
    limits: &Limits,
) -> Failure {
    if let Some(hit) = store.data().limiter.hit() {
        return Failure::limit(hit.name, hit.value, format!("{phase}: {}", hit.message));
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => return Failure::time(phase, limits),
        Some(wasmtime::Trap::OutOfFuel) => {
            let fuel = limits.fuel.unwrap_or(u64::MAX);
            return Failure::limit(
                "fuel",
                fuel,
                format!("{phase}: fuel limit of {fuel} exceeded"),
            );
        }
        Some(wasmtime::Trap::StackOverflow) => {
            return Failure::new(
                FailureKind::Trap,
                format!("{phase}: stack overflow (the guest exhausted its call stack)"),
            );
        }
        _ => {}
    }
    if let Some(limit) = table_or_instances(phase, e, limits) {
        return limit;
    }
    let cause_is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
    if cause_is(&|c| c.downcast_ref::<std::str::Utf8Error>().is_some()) {
        return Failure::new(
            FailureKind::Trap,
            format!("{phase}: the guest passed a string that is not valid UTF-8"),
        );
    }
    if cause_is(&|c| c.to_string().starts_with("too much data is being copied")) {
        return Failure::limit(
            "transfer",
            TRANSFER_LIMIT as u64,
            format!(
                "{phase}: transfer limit of {TRANSFER_LIMIT} bytes in one call exceeded (the arguments of a host call, or the response)"
            ),
        );
    }
    // The root cause is the trap or host error; the outer layers only add a
    // multi-line wasm backtrace.
    let root = e.root_cause().to_string();
    let cause = root.lines().next().unwrap_or("unknown error");
    Failure::new(
        FailureKind::Trap,
        format!("{phase}: guest trapped: {cause}"),
    )
}

/// The resource-table (handles, descriptor budget) or core-instances limit
/// that `e` says stopped the guest, if one did.
fn table_or_instances(phase: &str, e: &wasmtime::Error, limits: &Limits) -> Option<Failure> {
    let full = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<wasmtime::component::ResourceTableError>(),
            Some(wasmtime::component::ResourceTableError::Full)
        )
    });
    if full {
        return Some(match limits.descriptors {
            Some(share) => Failure::limit(
                "descriptors",
                share.handles as u64,
                format!(
                    "{phase}: descriptor budget of {} handles exceeded (open-file limit {} shared by {} instances)",
                    share.handles, share.open_files, share.instances
                ),
            ),
            None => Failure::limit(
                "resources",
                limits.resources as u64,
                format!(
                    "{phase}: resources limit of {} handles exceeded",
                    limits.resources
                ),
            ),
        });
    }
    // The store counts core instances (and the memories and tables they
    // define, bounded by the same limit) as the component is instantiated.
    let root = e.root_cause().to_string();
    let count = root.strip_prefix("resource limit exceeded: ")?;
    Some(Failure::limit(
        "instances",
        limits.instances as u64,
        format!(
            "{phase}: instances limit of {} exceeded ({count}: the component creates more core instances than the policy allows)",
            limits.instances
        ),
    ))
}

/// The failure for an output that could not be placed.
pub(super) fn placing_failed(e: PlaceError, limits: &Limits) -> Failure {
    let kind = match &e {
        PlaceError::Deadline => FailureKind::Limit {
            name: "time",
            value: limits.timeout.as_secs(),
        },
        PlaceError::Tree(TreeError::TooLarge(bytes)) => FailureKind::Limit {
            name: "output",
            value: *bytes,
        },
        PlaceError::Tree(TreeError::Io { .. }) | PlaceError::Io { .. } => FailureKind::Host,
        PlaceError::Tree(_)
        | PlaceError::Missing
        | PlaceError::NotRegular { .. }
        | PlaceError::DirectoryToStdout
        | PlaceError::DirectoryToDaemon
        | PlaceError::Changed(_) => FailureKind::Output,
    };
    Failure::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let codes: Vec<String> = [
            FailureKind::Limit {
                name: "time",
                value: 1,
            },
            FailureKind::Trap,
            FailureKind::Guest("io"),
            FailureKind::Output,
            FailureKind::DamagedInput,
            FailureKind::Policy,
            FailureKind::NoSpace,
            FailureKind::Host,
            FailureKind::Cancelled,
        ]
        .iter()
        .map(FailureKind::code)
        .collect();
        assert_eq!(
            codes,
            [
                "limit.time",
                "trap",
                "guest.io",
                "output",
                "input.damaged",
                "policy",
                "no-space",
                "host",
                "cancelled"
            ]
        );
        let e = guest_error(GuestError::Limit("x".into()));
        assert_eq!(
            (e.kind.code(), e.message.as_str()),
            ("guest.limit".into(), "limit exceeded: x")
        );
    }
}
