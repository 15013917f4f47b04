//! `docker-daemon:NAME` input: the daemon's `docker save` of the image
//! (`GET /images/get`), spooled whole into an unlinked file and read as a
//! docker-save tarball, as standard input is.

use outport_image::Image;

use super::error::InputError;
use super::spool::spool_file;
use super::transport::DaemonImage;
use crate::outbound::docker_daemon::Daemon;

/// Saves `image` from the daemon `DOCKER_HOST` names and opens it; blocks
/// (call it off the async threads, within the runtime).
pub(crate) fn save(image: &DaemonImage, display: &str) -> Result<Image, InputError> {
    let daemon_error = |source| InputError::Daemon {
        input: display.to_owned(),
        source,
    };
    let daemon = Daemon::from_env().map_err(daemon_error)?;
    let mut file = spool_file(display)?;
    tokio::runtime::Handle::current()
        .block_on(daemon.save(&image.api_name(), &mut file))
        .map_err(daemon_error)?;
    // The save holds the one image asked for (its tags, or none).
    Ok(outport_image::open_file(file, display, None)?)
}
