//! Where the input image comes from: the INPUT argument's transports
//! ([`transport`]: skopeo's names, a bare path, `-`), streams spooled to an
//! unlinked file ([`spool`]), images of the docker daemon ([`daemon`]),
//! images pulled from a registry ([`registry`]: its documents, through
//! [`remote`]; its layers on first read, [`download`]) into the blob store
//! ([`blob_store`]), and why an input cannot be read ([`error`]).
//! Reading and verifying the image itself is the `outport-image` crate's.

pub(crate) mod blob_store;
pub(crate) mod daemon;
pub(crate) mod download;
pub(crate) mod error;
pub(crate) mod registry;
pub(crate) mod remote;
pub(crate) mod spool;
pub(crate) mod transport;

use std::collections::HashSet;

use outport_image::Image;

use crate::output::metadata::Source;
pub use error::InputError;
pub(crate) use transport::Input;
use transport::PathRef;

impl Input {
    /// Reads and validates the image (blocking: call it off the async
    /// threads). `display` is the argument as the user wrote it. Streams
    /// are read to their end and the image validated before this returns,
    /// so nothing is written anywhere from a truncated or invalid input.
    /// A registry image (`docker://`) is pulled as `pull` says.
    pub(crate) fn open(&self, display: &str, pull: &PullOptions) -> Result<Opened, InputError> {
        let (image, reference, store) = match self {
            Input::Registry(reference) => {
                let pulled = registry::open(
                    &registry::Pull {
                        reference,
                        insecure: pull.insecure,
                        store: pull.store.as_deref(),
                    },
                    display,
                )?;
                let normalised = registry::parse(reference, display)?.to_string();
                (pulled.image, normalised, Some((pulled.store, pulled.used)))
            }
            Input::Path(path) => (outport_image::open(path)?, display.to_owned(), None),
            Input::OciLayout(p) => (
                open_path(p, display, "oci", true)?,
                display.to_owned(),
                None,
            ),
            Input::OciArchive(p) => (
                open_path(p, display, "oci-archive", false)?,
                display.to_owned(),
                None,
            ),
            Input::DockerArchive(p) => (
                open_path(p, display, "docker-archive", false)?,
                display.to_owned(),
                None,
            ),
            Input::Stdin => {
                let file = spool::stdin()?;
                let image = outport_image::open_file(file, "-", None)?;
                (image, display.to_owned(), None)
            }
            Input::DockerDaemon(image) => (daemon::save(image, display)?, display.to_owned(), None),
        };
        let source = Source {
            reference,
            digest: image.root().digest().to_string(),
        };
        Ok(Opened {
            image,
            source,
            store,
        })
    }
}

/// An input image, read.
pub(crate) struct Opened {
    /// The image.
    pub(crate) image: Image,
    /// How it was named, and its root's digest (the metadata's `source`).
    pub(crate) source: Source,
    /// For a registry image: the blob store it was read from and the hex
    /// digests of the blobs it names, kept when the store is pruned.
    pub(crate) store: Option<(blob_store::BlobStore, HashSet<String>)>,
}

/// How a registry input is pulled.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Plain HTTP (`--src-insecure`).
    pub insecure: bool,
    /// The blob store's directory; `None`: a store of this run alone.
    pub store: Option<std::path::PathBuf>,
}

/// Opens the directory (`oci:`) or archive of a path transport, after
/// checking it is the kind of file `transport` reads.
fn open_path(
    p: &PathRef,
    display: &str,
    transport: &'static str,
    directory: bool,
) -> Result<Image, InputError> {
    let shown = p.path.display().to_string();
    if let Ok(meta) = p.path.metadata()
        && meta.is_dir() != directory
    {
        let (found, expected) = if directory {
            ("not a directory", "a layout directory")
        } else {
            ("a directory", "a tar archive")
        };
        return Err(InputError::WrongKind {
            input: display.to_owned(),
            path: shown,
            found,
            transport,
            expected,
        });
    }
    Ok(outport_image::open_path(
        &p.path,
        &shown,
        p.reference.as_deref(),
    )?)
}
