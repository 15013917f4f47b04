//! A [`Plan`]: walks the image from a root, applies annotation rewrites, and
//! lists the blobs to write, in walk order, each once.
//!
//! Without annotation, layer or media type options nothing is rewritten: the
//! blobs are the input's and the root digest is unchanged. With them, each
//! changed manifest, config or index is re-serialized (all other fields
//! kept, in their order) and handed to the host with `image::put-blob`,
//! which computes the new digest; parents then point to the new
//! descriptors. Layers are converted by the host (`image::convert-layers`:
//! compression, timestamps), never in the guest; a config then gets the new
//! `rootfs.diff_ids`, and with a source date epoch its `created` times are
//! clamped to it.
//!
//! [`Rewrites`] says what to change; the walker (`walker`) visits each blob
//! once, an index (`index`) and a manifest (`manifest`) are rewritten with
//! the JSON edits of `edit`, attestations pointed at what their subjects
//! became (`subjects`); [`Plan`] and its [`Root`] are what comes out.

mod edit;
mod index;
mod manifest;
mod rewrites;
mod root;
mod subjects;
mod walker;

pub use rewrites::{IMAGE_NAME, REF_NAME, Rewrites};
pub use root::{Plan, Root};
