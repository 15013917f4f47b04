//! The instance's side of `blob.write-files`: many files created beneath a
//! directory the guest holds, each with its bytes out of one blob, its mode
//! and its time, in one host call (one hop to blocking threads for the
//! whole list, where `local` used to make four guest calls a file).
//!
//! A long list is cut into runs of consecutive files, one per core (at most
//! four: [`call_threads`]), created at once: the files of a layer are independent
//! once their directories exist, and creating inodes and copying bytes is
//! most of an unpack's time, which one thread (as GNU tar has) leaves on a
//! single core. Out of a compressed layer's view, whose bytes are
//! decompressed where read, one thread decompresses the files' bytes in
//! order while the others create them (`inflating`).
//!
//! - `file`: one file created, its mode and time set; why a list stops.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::Descriptor as WasiDescriptor;

use super::{BlobResource, ImageView, call_threads};
use crate::host::bindings::HostError;
use crate::host::bindings::image::NewFile;
use crate::host::bindings::types::Error;
use crate::image::BlobHandle;
use crate::output::beneath::Beneath;
use crate::sandbox::limits::LimitReached;

mod file;
mod inflating;

use file::{WriteError, check_deadline, create, finish};

/// Files a thread is given at least: fewer are not worth a hand-off.
const MIN_PER_WORKER: usize = 64;

impl ImageView<'_> {
    /// `blob.write-files`: checks every range and charges the bytes first,
    /// then creates the files on blocking threads.
    pub(super) async fn write_files_call(
        &mut self,
        this: Resource<BlobResource>,
        dir: Resource<WasiDescriptor>,
        files: Vec<NewFile>,
    ) -> Result<u64, HostError> {
        let blob = self.blob_of(&this).await?;
        let dir = self.writable_dir(&dir)?;
        let mut total = 0u64;
        for file in &files {
            if let Err(e) = blob.check_range(file.start, file.len) {
                return self.blob_result(Err(e));
            }
            total = total.saturating_add(file.len);
        }
        let charged = self.ctx.quota.charge(total);
        charged.map_err(|hit| self.limit(hit))?;
        let deadline = self.ctx.deadline;
        let timeout = self.ctx.limits.timeout.as_secs();
        let written = write_parallel(dir, blob, files, deadline, timeout).await?;
        match written {
            Ok(count) => Ok(count),
            Err(WriteError::Blob(e)) => self.blob_result(Err(e)),
            Err(e @ WriteError::Deadline(secs)) => Err(self.limit(LimitReached {
                name: "time",
                value: secs,
                message: e.to_string(),
            })),
            Err(e) => Err(Error::Io(e.to_string()).into()),
        }
    }

    /// The directory behind `dir` if the guest's grant lets it write there.
    fn writable_dir(&self, dir: &Resource<WasiDescriptor>) -> Result<Arc<File>, HostError> {
        match self.table.get(dir)? {
            WasiDescriptor::Dir(d) if !d.perms.write_not_permitted() => Ok(d.dir.clone()),
            WasiDescriptor::Dir(_) => {
                Err(Error::Io("write-files: the directory's grant is read-only".into()).into())
            }
            WasiDescriptor::File(_) => {
                Err(Error::Io("write-files: the descriptor is not a directory".into()).into())
            }
        }
    }
}

/// Creates the files of `files` beneath `dir`, runs of consecutive ones on
/// as many blocking threads as there are cores (at most four, at
/// least [`MIN_PER_WORKER`] files each); the first failure in the list's
/// order is the answer (the other threads finish their runs or stop at
/// their own first failure).
async fn write_parallel(
    dir: Arc<File>,
    blob: BlobHandle,
    mut files: Vec<NewFile>,
    deadline: Option<Instant>,
    timeout: u64,
) -> Result<Result<u64, WriteError>, tokio::task::JoinError> {
    if blob.is_lazy() {
        let writers = call_threads();
        return tokio::task::spawn_blocking(move || {
            inflating::write_all(&dir, &blob, &files, deadline, timeout, writers)
        })
        .await;
    }
    let workers = (files.len() / MIN_PER_WORKER).clamp(1, call_threads());
    let per = files.len().div_ceil(workers).max(1);
    let mut runs = Vec::with_capacity(workers);
    while files.len() > per {
        let rest = files.split_off(per);
        runs.push(std::mem::replace(&mut files, rest));
    }
    runs.push(files);
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let (dir, blob) = (Arc::clone(&dir), blob.clone());
            tokio::task::spawn_blocking(move || write_all(&dir, &blob, &run, deadline, timeout))
        })
        .collect();
    let mut total = 0u64;
    let mut first_error = None;
    for task in tasks {
        match task.await? {
            Ok(count) => total += count,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Ok(first_error.map_or(Ok(total), Err))
}

/// Creates every file of `files` beneath `dir`, in order; stops at the
/// first failure or past `deadline`.
fn write_all(
    dir: &File,
    blob: &BlobHandle,
    files: &[NewFile],
    deadline: Option<Instant>,
    timeout: u64,
) -> Result<u64, WriteError> {
    let mut beneath = Beneath::new(dir);
    for file in files {
        check_deadline(deadline, timeout)?;
        let out = create(&mut beneath, file)?;
        if file.len > 0 {
            blob.copy_range_to_file(file.start, file.len, &out, 0)
                .map_err(WriteError::Blob)?;
        }
        finish(&out, file)?;
    }
    Ok(files.len() as u64)
}
