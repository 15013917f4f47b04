//! The image ID written by `--iidfile`, as buildx writes it: the config
//! digest of the chosen instance's image, or its image digest when it has no
//! single config (a multi-platform index).

use crate::error::Error;
use crate::instance::InstanceResult;
use crate::run::session::SessionResult;

/// Exporter types whose response names an image (the default source).
const IMAGE_TYPES: &[&str] = &["oci", "docker"];

/// The image ID of instance `from`, or of the first `oci`/`docker` instance.
pub fn image_id(result: &SessionResult, from: Option<&str>) -> Result<String, Error> {
    let instance: &InstanceResult = match from {
        Some(id) => result
            .exporters
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::Usage(format!("--iidfile-from: no instance {id:?}")))?,
        None => result
            .exporters
            .iter()
            .find(|r| IMAGE_TYPES.contains(&r.kind.as_str()))
            .ok_or_else(|| Error::Usage("--iidfile: no oci or docker output".to_string()))?,
    };
    if !instance.is_ok() {
        return Err(Error::Usage(format!(
            "--iidfile: instance {:?} failed, it has no image ID",
            instance.id
        )));
    }
    instance
        .response
        .get("containerimage.config.digest")
        .or_else(|| instance.response.get("containerimage.digest"))
        .cloned()
        .ok_or_else(|| {
            Error::Usage(format!(
                "--iidfile: instance {:?} reported no image digest",
                instance.id
            ))
        })
}
