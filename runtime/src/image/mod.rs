//! The input image as a run sees it. Reading and verifying inputs (OCI
//! layouts, OCI archives, docker-save tarballs) is the `outport-image`
//! crate's; here the run verifies blobs ahead of its instances, and a blob
//! is shared by every instance that holds it.

use std::sync::Arc;

pub(crate) mod ahead;
pub(crate) mod diff_ids;

/// A blob an instance holds (in its resource table): shared with the image
/// and with other instances, verified as its bytes are read.
pub type BlobHandle = Arc<outport_image::Blob>;
