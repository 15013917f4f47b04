//! The docker exporter's options.

use outport_exporter::image_options::{self, ImageOptions};
use outport_exporter::options::{OptionSpec, Parsed};
use outport_exporter::{Error, Platform};

/// Options after validation.
#[derive(Debug)]
pub struct Options {
    /// Image names, normalized (`x` → `docker.io/library/x:latest`).
    pub names: Vec<String>,
    /// The platform to export, when given.
    pub platform: Option<Platform>,
    /// Compression, media types, timestamps and annotations.
    pub image: ImageOptions,
}

/// The options of this exporter alone.
const OWN: &[OptionSpec] = &[
    OptionSpec::repeatable(
        "name",
        "image name for manifest.json's RepoTags (docker's short form), repositories and \
         index.json; repeat or separate with commas for several",
    ),
    OptionSpec::once(
        "platform",
        "os/arch[/variant] of the image to export from a multi-platform image; without it: \
         the only platform, else the host's platform, else an error listing the platforms",
    ),
];

/// The options, as `describe` lists them and `validate` accepts them: its
/// own, then the image options every image exporter shares.
pub fn specs() -> Vec<OptionSpec> {
    [OWN, image_options::SPECS].concat()
}

/// Parses and checks the options.
pub fn parse(options: &[(String, String)]) -> Result<Options, Error> {
    let parsed = Parsed::new("docker", &specs(), options)?;
    let platform = parsed
        .str("platform")
        .map(|p| {
            Platform::parse(p)
                .map_err(|e| Error::InvalidOption(format!("invalid option \"platform\": {e}")))
        })
        .transpose()?;
    Ok(Options {
        names: parsed.image_names("name")?,
        platform,
        image: ImageOptions::parse("docker", &parsed)?,
    })
}
