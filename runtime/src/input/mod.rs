//! Where the input image comes from: the INPUT argument's transports
//! ([`transport`]: skopeo's names, a bare path, `-`), streams spooled to an
//! unlinked file ([`spool`]), images of the docker daemon ([`daemon`]),
//! and why an input cannot be read ([`error`]).
//! Reading and verifying the image itself is the `outport-image` crate's.

pub(crate) mod blob_store;
pub(crate) mod daemon;
pub(crate) mod error;
pub(crate) mod registry;
pub(crate) mod spool;
pub(crate) mod transport;

use outport_image::Image;

pub use error::InputError;
pub(crate) use transport::Input;
use transport::PathRef;

impl Input {
    /// Reads and validates the image (blocking: call it off the async
    /// threads). `display` is the argument as the user wrote it. Streams
    /// are read to their end and the image validated before this returns,
    /// so nothing is written anywhere from a truncated or invalid input.
    /// A registry image (`docker://`) is pulled as `pull` says.
    pub(crate) fn open(&self, display: &str, pull: &PullOptions) -> Result<Image, InputError> {
        match self {
            Input::Path(path) => Ok(outport_image::open(path)?),
            Input::OciLayout(p) => open_path(p, display, "oci", true),
            Input::OciArchive(p) => open_path(p, display, "oci-archive", false),
            Input::DockerArchive(p) => open_path(p, display, "docker-archive", false),
            Input::Stdin => {
                let file = spool::stdin()?;
                Ok(outport_image::open_file(file, "-", None)?)
            }
            Input::DockerDaemon(image) => daemon::save(image, display),
            Input::Registry(reference) => registry::open(
                &registry::Pull {
                    reference,
                    insecure: pull.insecure,
                    store: &pull.store,
                },
                display,
            ),
        }
    }
}

/// How a registry input is pulled.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Plain HTTP (`--src-insecure`).
    pub insecure: bool,
    /// The blob store's directory.
    pub store: std::path::PathBuf,
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
