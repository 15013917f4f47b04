//! `outport:exporter/files`: file operations `wasi:filesystem` lacks,
//! applied to a descriptor the guest opened in its granted directory.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::filesystem::Descriptor as WasiDescriptor;

use crate::host::bindings::HostError;
use crate::host::bindings::files::Host;
use crate::host::bindings::types::Error;

/// Permission bits a guest may set: rwx for all, and sticky; never
/// set-user-ID or set-group-ID.
const ALLOWED_MODE: u32 = 0o1777;

/// The `files` interface's view of an instance: its resource table, where
/// the guest's file descriptors are.
pub struct FilesView<'a> {
    pub(crate) table: &'a mut ResourceTable,
}

impl crate::host::bindings::types::Host for FilesView<'_> {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<Error> {
        err.into_guest()
    }
}

impl Host for FilesView<'_> {
    async fn set_mode(
        &mut self,
        target: Resource<WasiDescriptor>,
        mode: u32,
    ) -> Result<(), HostError> {
        let (file, perms) = match self.table.get(&target)? {
            WasiDescriptor::File(f) => (f.file.clone(), f.perms),
            WasiDescriptor::Dir(d) => (d.dir.clone(), d.perms),
        };
        if perms.write_not_permitted() {
            return Err(Error::Io("set-mode: the descriptor's grant is read-only".into()).into());
        }
        let mode = mode & ALLOWED_MODE;
        // One `fchmod`, on the calling thread: the instance's store may
        // block it for file I/O (as wasmtime-wasi's own calls do), and a hop
        // to a blocking thread and back cost more than the call.
        let result = file.set_permissions(Permissions::from_mode(mode));
        Ok(result.map_err(|e| Error::Io(format!("set-mode {mode:o}: {e}")))?)
    }
}
