//! Build info: the `moby.buildkit.buildinfo.v0` field BuildKit v0.9–v0.11
//! put in each image config, computed by the host before any exporter sees
//! the image, and the `containerimage.buildinfo` response keys.
//!
//! For each image manifest, the sources are the union of
//! - `--build-sources FILE` ([`BuildInputs::sources`]),
//! - the sources already in the input config's field (its `frontend` and
//!   `deps` are kept too), and
//! - the base image named by the manifest's or its index entry's
//!   `org.opencontainers.image.base.name`/`.base.digest` annotations,
//!
//! normalised, stripped of credentials, deduplicated and sorted
//! ([`sources`]). The field is base64 of that compact JSON; the config,
//! manifest and index blobs that change are added to a copy of the image
//! sharing every other blob, layers included ([`config`]).
//!
//! Per output (host-owned options, never passed to the component):
//! `buildinfo=false` gives the instance the input image unchanged and no
//! response key; `buildinfo-attrs=true` adds the `--attr` attributes.
//! When no build info results (nothing given, nothing in the input), the
//! image is left as it is and no key is added.

pub mod config;
pub mod sources;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use outport_image::Image;

use crate::error::Error;
pub use config::CONFIG_KEY;
pub use sources::{BuildInfo, Source};

/// The response key (prefix, for multi-platform images).
pub const RESPONSE_KEY: &str = "containerimage.buildinfo";
/// Output option: `false` leaves the image and the response without build info.
pub const OPT_BUILDINFO: &str = "buildinfo";
/// Output option: `true` adds the build attributes (`--attr`).
pub const OPT_ATTRS: &str = "buildinfo-attrs";

/// What the user gave for the build info of a whole run.
#[derive(Clone, Debug, Default)]
pub struct BuildInputs {
    /// `--build-sources`.
    pub sources: Vec<Source>,
    /// `--attr KEY=VALUE`.
    pub attrs: BTreeMap<String, String>,
}

impl BuildInputs {
    /// Reads `--build-sources FILE` (if any) and parses `--attr` arguments;
    /// the error is one line naming the file or argument.
    pub fn from_args(sources: Option<&Path>, attrs: &[String]) -> Result<BuildInputs, String> {
        Ok(BuildInputs {
            sources: match sources {
                Some(path) => sources::read_sources_file(path)?,
                None => Vec::new(),
            },
            attrs: sources::parse_attrs(attrs)?,
        })
    }
}

/// Which image an output gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Choice {
    /// The input as it is (`buildinfo=false`).
    Off,
    /// Build info without attributes (the default).
    #[default]
    Sources,
    /// Build info with attributes (`buildinfo-attrs=true`).
    WithAttrs,
}

/// Takes the host-owned build-info options out of an output's `options`
/// and returns the choice they make. `id` names the output in errors.
pub fn take_options(id: &str, options: &mut Vec<(String, String)>) -> Result<Choice, Error> {
    let mut enabled = None;
    let mut attrs = None;
    let mut error = None;
    options.retain(|(k, v)| {
        let slot = match k.as_str() {
            OPT_BUILDINFO => &mut enabled,
            OPT_ATTRS => &mut attrs,
            _ => return true,
        };
        let parsed = match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        match (slot.is_some(), parsed) {
            (true, _) => error.get_or_insert(format!("{k}= is given more than once")),
            (false, None) => error.get_or_insert(format!("{k}={v:?}: expected true or false")),
            (false, Some(b)) => {
                *slot = Some(b);
                return false;
            }
        };
        false
    });
    if let Some(e) = error {
        return Err(Error::Usage(format!("output {id}: {e}")));
    }
    Ok(match (enabled.unwrap_or(true), attrs.unwrap_or(false)) {
        (false, _) => Choice::Off,
        (true, false) => Choice::Sources,
        (true, true) => Choice::WithAttrs,
    })
}

/// One variant of the image and the response keys that go with it.
#[derive(Clone)]
struct Variant {
    image: Arc<Image>,
    keys: BTreeMap<String, String>,
}

/// The image variants a session's outputs need, computed once each and
/// sharing the input's blobs.
pub struct Variants {
    original: Arc<Image>,
    computed: BTreeMap<Choice, Variant>,
}

impl Variants {
    /// Computes the variants `choices` ask for. Fails when an input config
    /// carries a build-info field that cannot be decoded.
    pub fn compute(
        image: &Arc<Image>,
        inputs: &BuildInputs,
        choices: &[Choice],
    ) -> Result<Variants, Error> {
        let mut computed = BTreeMap::new();
        for &choice in choices {
            if choice == Choice::Off || computed.contains_key(&choice) {
                continue;
            }
            let plan = config::Plan {
                sources: &inputs.sources,
                attrs: &inputs.attrs,
                keep_attrs: choice == Choice::WithAttrs,
            };
            let outcome = config::rewrite(image, &plan)
                .map_err(|e| Error::BuildInfo(format!("{}: build info: {e}", image.name())))?;
            let keys = response_keys(&outcome);
            let image = match outcome.image {
                Some(rewritten) => Arc::new(rewritten),
                None => image.clone(),
            };
            computed.insert(choice, Variant { image, keys });
        }
        Ok(Variants {
            original: image.clone(),
            computed,
        })
    }

    /// The image for an output that made `choice`.
    pub fn image(&self, choice: Choice) -> Arc<Image> {
        self.computed
            .get(&choice)
            .map_or_else(|| self.original.clone(), |v| v.image.clone())
    }

    /// Sets the host-owned build-info keys of a response: a guest's own
    /// `containerimage.buildinfo*` keys are removed, then the variant's
    /// keys (none for `buildinfo=false`) are added.
    pub fn respond(&self, choice: Choice, response: &mut BTreeMap<String, String>) {
        response.retain(|k, _| !k.starts_with(RESPONSE_KEY));
        if let Some(v) = self.computed.get(&choice) {
            response.extend(v.keys.clone());
        }
    }
}

/// `containerimage.buildinfo` for an image with one image manifest;
/// `containerimage.buildinfo/<os>/<arch>[/<variant>]` for each of several.
fn response_keys(outcome: &config::Outcome) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for p in &outcome.platforms {
        let key = if outcome.manifests == 1 {
            RESPONSE_KEY.to_string()
        } else {
            format!("{RESPONSE_KEY}/{}", p.platform)
        };
        keys.entry(key).or_insert_with(|| p.encoded.clone());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_options_are_taken_out() {
        let mut o = opts(&[("name", "x"), ("buildinfo", "false"), ("tar", "true")]);
        assert_eq!(take_options("0", &mut o).unwrap(), Choice::Off);
        assert_eq!(o, opts(&[("name", "x"), ("tar", "true")]));

        let mut o = opts(&[("buildinfo-attrs", "true")]);
        assert_eq!(take_options("0", &mut o).unwrap(), Choice::WithAttrs);
        assert!(o.is_empty());

        let mut o = opts(&[("buildinfo", "false"), ("buildinfo-attrs", "true")]);
        assert_eq!(take_options("0", &mut o).unwrap(), Choice::Off);

        let mut o = opts(&[]);
        assert_eq!(take_options("0", &mut o).unwrap(), Choice::Sources);

        let err = |pairs: &[(&str, &str)]| {
            take_options("out", &mut opts(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[("buildinfo", "no")]).contains("expected true or false"));
        assert!(err(&[("buildinfo", "no")]).contains("output out"));
        assert!(err(&[("buildinfo", "true"), ("buildinfo", "true")]).contains("more than once"));
    }
}
