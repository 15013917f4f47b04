//! The instance's side of `copy-ranges`: many ranges of several blobs
//! copied into one file the guest holds, in one host call, the ranges of
//! different blobs at once.
//!
//! `tar` writes a root filesystem's headers itself and has every file's
//! bytes copied in between. Asked one range at a time, the copies of a
//! compressed layer's view (decompressed as they are copied) ran one layer
//! after another, each call a round trip through the guest; given the whole
//! list, the host decompresses as many layers at once as it has cores (at
//! most four: [`call_threads`]), largest first, each layer's ranges in the list's
//! order.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::Descriptor as WasiDescriptor;

use super::{BlobResource, ImageView, call_threads};
use crate::host::bindings::HostError;
use crate::host::bindings::image::BlobRange;
use crate::host::bindings::types::Error;
use crate::image::BlobHandle;
use crate::sandbox::limits::LimitReached;

/// Ranges one call takes at most.
const MAX_RANGES: usize = 1 << 18;
/// Blobs one call names at most.
const MAX_BLOBS: usize = 4096;

/// One blob's ranges, as `(start, len, offset)` in the list's order, with
/// the index in the list of each (to tell which failed first).
struct Group {
    blob: BlobHandle,
    ranges: Vec<(usize, u64, u64, u64)>,
    bytes: u64,
}

/// Why the copies stopped.
enum CopyError {
    Blob(Box<outport_image::Error>),
    Deadline,
}

impl ImageView<'_> {
    /// `copy-ranges`: checks the arguments, every range and the instance's
    /// quota first, then copies on blocking threads.
    pub(super) async fn copy_ranges_call(
        &mut self,
        blobs: Vec<Resource<BlobResource>>,
        ranges: Vec<BlobRange>,
        dest: Resource<WasiDescriptor>,
    ) -> Result<u64, HostError> {
        if ranges.len() > MAX_RANGES || blobs.len() > MAX_BLOBS {
            return Err(Error::Limit(format!(
                "copy-ranges: {} ranges of {} blobs in one call; at most {MAX_RANGES} ranges and \
                 {MAX_BLOBS} blobs",
                ranges.len(),
                blobs.len()
            ))
            .into());
        }
        let file = self.writable_file(&dest, "copy-ranges")?;
        let handles = self.blobs_of(&blobs).await?;
        let mut groups: Vec<Group> = handles
            .into_iter()
            .map(|blob| Group {
                blob,
                ranges: Vec::new(),
                bytes: 0,
            })
            .collect();
        let mut total = 0u64;
        for (index, range) in ranges.iter().enumerate() {
            let count = groups.len();
            let group = usize::try_from(range.blob)
                .ok()
                .and_then(|b| groups.get_mut(b))
                .ok_or_else(|| {
                    Error::InvalidOption(format!(
                        "copy-ranges: range {index} names blob {}; the call has {count}",
                        range.blob
                    ))
                })?;
            if let Err(e) = group.blob.check_range(range.start, range.len) {
                return self.blob_result(Err(e));
            }
            if range.len > 0 {
                group
                    .ranges
                    .push((index, range.start, range.len, range.offset));
                group.bytes += range.len;
                total = total.saturating_add(range.len);
            }
        }
        let charged = self.ctx.quota.charge(total);
        charged.map_err(|hit| self.limit(hit))?;
        groups.retain(|g| !g.ranges.is_empty());
        // Largest first: the longest decompression starts at once.
        groups.sort_by_key(|g| std::cmp::Reverse(g.bytes));
        let deadline = self.ctx.deadline;
        let copied =
            tokio::task::spawn_blocking(move || copy_all(&file, &groups, deadline)).await?;
        match copied {
            Ok(()) => Ok(total),
            Err((index, CopyError::Blob(e))) => {
                self.ctx.damaged.note(&e);
                Err(Error::InvalidImage(format!("copy-ranges: range {index}: {e}")).into())
            }
            Err((_, CopyError::Deadline)) => {
                let secs = self.ctx.limits.timeout.as_secs();
                Err(self.limit(LimitReached {
                    name: "time",
                    value: secs,
                    message: format!("copy-ranges: time limit of {secs} s exceeded"),
                }))
            }
        }
    }
}

/// Copies every group's ranges into `file`: groups taken in turn by as many
/// threads as there are cores (at most four), a group's ranges
/// in order. The failure of the range first in the list is the answer; the
/// other threads stop at their next range.
fn copy_all(
    file: &File,
    groups: &[Group],
    deadline: Option<Instant>,
) -> Result<(), (usize, CopyError)> {
    let workers = groups.len().min(call_threads());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failures: Mutex<Vec<(usize, CopyError)>> = Mutex::default();
    let work = || {
        while let Some(group) = groups.get(next.fetch_add(1, Ordering::AcqRel)) {
            if let Err(failure) = copy_group(file, group, deadline, &stop) {
                stop.store(true, Ordering::Release);
                failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(failure);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    failures.sort_by_key(|(index, _)| *index);
    match failures.into_iter().next() {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// Copies one group's ranges, in order, until one fails, the deadline
/// passes or another thread failed; the failure with its range's index.
fn copy_group(
    file: &File,
    group: &Group,
    deadline: Option<Instant>,
    stop: &AtomicBool,
) -> Result<(), (usize, CopyError)> {
    for &(index, start, len, offset) in &group.ranges {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err((index, CopyError::Deadline));
        }
        group
            .blob
            .copy_range_to_file(start, len, file, offset)
            .map_err(|e| (index, CopyError::Blob(Box::new(e))))?;
    }
    Ok(())
}
