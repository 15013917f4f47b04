//! Choosing the one image manifest a docker tarball holds.
//!
//! Without `platform=`: an image with one platform gives it; an image with
//! several gives the host's platform (passed in the request), and is an
//! error listing its platforms when it does not have it.

use outport_exporter::walk::{ImageManifest, find_platform, platform_list};
use outport_exporter::{Error, Platform, log};

/// The manifest to export among `manifests`: for `wanted` when given,
/// else the only one, else the one for `host`.
pub fn manifest<'a>(
    manifests: &'a [ImageManifest],
    wanted: Option<&Platform>,
    host: &Platform,
) -> Result<&'a ImageManifest, Error> {
    if manifests.is_empty() {
        return Err(Error::Unsupported(
            "the image holds no image manifest".to_owned(),
        ));
    }
    if let Some(wanted) = wanted {
        return find_platform(manifests, wanted).ok_or_else(|| {
            Error::InvalidOption(format!(
                "option \"platform\": the image has no {wanted} image; its platforms are {}",
                platform_list(manifests)
            ))
        });
    }
    if let [only] = manifests {
        return Ok(only);
    }
    match find_platform(manifests, host) {
        Some(m) => {
            log::info(&format!(
                "the image has several platforms ({}): exporting the host's, {host}; \
                 choose another with platform=",
                platform_list(manifests)
            ));
            Ok(m)
        }
        None => Err(Error::InvalidOption(format!(
            "the image has several platforms and none is the host's ({host}): choose one with \
             platform=OS/ARCH[/VARIANT]; its platforms are {}",
            platform_list(manifests)
        ))),
    }
}
