//! The input image as a run sees it. Reading and verifying inputs (OCI
//! layouts, OCI archives, docker-save tarballs) is the `outport-image`
//! crate's; here the run verifies blobs ahead of its instances.

pub(crate) mod ahead;
