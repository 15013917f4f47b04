//! Blobs: the content behind a descriptor, either a byte range of a file of
//! the input (a blob file of a layout directory or an entry of a tar archive)
//! or bytes in memory, and the readers that stream and verify them.
//!
//! - `handle`: the [`Blob`] type, its constructors and what it says of
//!   itself;
//! - `fetch`: blobs fetched on first read ([`Fetch`], a registry's
//!   layers);
//! - `storage`: where a blob's bytes are (`region`: a [`FileRegion`],
//!   memory); `label`:
//!   what messages about a blob name;
//! - `inflated`: a compressed layer's uncompressed view kept as its
//!   source and a skeleton of its tar; `lazy`: making one, copying ranges
//!   out of it, checking its source;
//! - `stream`: the verifying cursor every consumer reads through;
//!   `claim` and `verify`: one consumer at a time hashes a blob, the
//!   others wait for its verdict or copy meanwhile;
//! - `reader`: [`BlobReader`] and whole reads; `copy`: copies into files
//!   (positioned writes hashed aside, `copy_file_range` once verified).

mod claim;
mod copy;
mod fetch;
mod handle;
mod inflated;
mod label;
mod lazy;
mod reader;
mod region;
mod storage;
mod stream;
mod verify;

pub use handle::Blob;
pub(crate) use inflated::{Codec, Recorder, Walker, ZSTD_MAX_WINDOW_LOG};
pub use lazy::Ranges;
pub use reader::BlobReader;
pub(crate) use storage::FileRegion;
pub use storage::{Fetch, FetchError};
