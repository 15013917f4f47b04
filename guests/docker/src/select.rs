//! Choosing the one image manifest a docker tarball holds.
//!
//! The guest cannot know the host's platform, so without `platform=`: an
//! image with one platform gives it; an image with several gives
//! `linux/amd64` when it has it (BuildKit's most common host), and is an
//! error listing its platforms otherwise.

use outport_exporter::walk::{ImageManifest, find_platform, platform_list};
use outport_exporter::{Error, Platform, log};

/// The platform chosen when the image has several and none was asked for.
const DEFAULT_PLATFORM: &str = "linux/amd64";

/// The manifest to export among `manifests`, for `wanted` when given.
pub fn manifest<'a>(
    manifests: &'a [ImageManifest],
    wanted: Option<&Platform>,
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
    let default = Platform::parse(DEFAULT_PLATFORM).expect("a valid platform");
    match find_platform(manifests, &default) {
        Some(m) => {
            log::info(&format!(
                "the image has several platforms ({}): exporting {DEFAULT_PLATFORM}; \
                 choose another with platform=",
                platform_list(manifests)
            ));
            Ok(m)
        }
        None => Err(Error::InvalidOption(format!(
            "the image has several platforms and none is {DEFAULT_PLATFORM}: choose one with \
             platform=OS/ARCH[/VARIANT]; its platforms are {}",
            platform_list(manifests)
        ))),
    }
}
