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
//!
//! With `--attest provenance` ([`BuildInputs::provenance`]), each output's
//! image (the variant its build-info options chose) also gets an SLSA
//! provenance attestation per image manifest ([`provenance`]), unless the
//! output says `attest=false`. The subject names come from the output's
//! `name=` options (read, not taken: they stay the exporter's), so outputs
//! with the same choices and names share one attested image.

pub mod config;
pub mod error;
pub mod provenance;
pub mod sources;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use outport_image::Image;

use crate::error::Error;
use error::{ImageError, InputError, Step};
pub use sources::Source;

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
    /// `--attest provenance[,mode=min|max]`.
    pub provenance: Option<provenance::Request>,
}

impl BuildInputs {
    /// Reads `--build-sources FILE` (if any) and parses `--attr` arguments;
    /// the error is one line naming the file or argument.
    pub fn from_args(sources: Option<&Path>, attrs: &[String]) -> Result<BuildInputs, InputError> {
        Ok(BuildInputs {
            sources: match sources {
                Some(path) => sources::read_sources_file(path)?,
                None => Vec::new(),
            },
            attrs: sources::parse_attrs(attrs)?,
            provenance: None,
        })
    }
}

/// Which image an output gets: its build info and whether it is attested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    /// The build info.
    pub info: Info,
    /// Attestations when the run asks for them (not `attest=false`).
    pub attest: bool,
    /// The output's image names (its `name=` options), normalised: the
    /// attestations' subjects.
    pub names: Vec<String>,
    /// Attestation manifests as OCI artifacts (`oci-artifact`; default
    /// true unless the output asks for `oci-mediatypes=false`, as BuildKit).
    pub oci_artifact: bool,
}

/// Which build info an output gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Info {
    /// The input as it is (`buildinfo=false`).
    Off,
    /// Build info without attributes (the default).
    #[default]
    Sources,
    /// Build info with attributes (`buildinfo-attrs=true`).
    WithAttrs,
}

/// Takes the host-owned build-info and attestation options out of an
/// output's `options` and returns the choice they make. `id` names the
/// output in errors.
pub fn take_options(id: &str, options: &mut Vec<(String, String)>) -> Result<Choice, Error> {
    let mut enabled = None;
    let mut attrs = None;
    let mut attest = None;
    let mut oci_artifact = None;
    let mut error = None;
    let mut names: Vec<String> = Vec::new();
    // The exporter's own option, read here for the default of oci-artifact.
    let mut oci_types = true;
    for (k, v) in options.iter() {
        if k == "oci-mediatypes" && v == "false" {
            oci_types = false;
        }
        if k == "name" {
            for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let name = sources::normalize_image_ref(name);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    options.retain(|(k, v)| {
        let slot = match k.as_str() {
            OPT_BUILDINFO => &mut enabled,
            OPT_ATTRS => &mut attrs,
            provenance::OPT_ATTEST => &mut attest,
            provenance::OPT_OCI_ARTIFACT => &mut oci_artifact,
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
    if oci_artifact == Some(true) && !oci_types {
        error.get_or_insert(
            "oci-artifact=true conflicts with oci-mediatypes=false (as in BuildKit)".to_owned(),
        );
    }
    if let Some(e) = error {
        return Err(Error::Usage(format!("output {id}: {e}")));
    }
    let info = match (enabled.unwrap_or(true), attrs.unwrap_or(false)) {
        (false, _) => Info::Off,
        (true, false) => Info::Sources,
        (true, true) => Info::WithAttrs,
    };
    Ok(Choice {
        info,
        attest: attest.unwrap_or(true),
        names,
        oci_artifact: oci_artifact.unwrap_or(oci_types),
    })
}

/// One variant of the image and the response keys that go with it.
#[derive(Clone)]
struct Variant {
    image: Arc<Image>,
    keys: BTreeMap<String, String>,
}

/// What an attested image depends on besides the run: the build-info
/// choice, the subject names and whether attestations are OCI artifacts.
type AttestedKey = (Info, Vec<String>, bool);

/// The image variants a session's outputs need, computed once each and
/// sharing the input's blobs.
pub struct Variants {
    original: Arc<Image>,
    computed: BTreeMap<Info, Variant>,
    /// Attested images, by build-info choice, subject names and form.
    attested: BTreeMap<AttestedKey, Arc<Image>>,
    /// Whether the run asked for attestations.
    attesting: bool,
}

impl Variants {
    /// Computes the variants `choices` ask for. Fails when an input config
    /// carries a build-info field that cannot be decoded.
    pub fn compute(
        image: &Arc<Image>,
        inputs: &BuildInputs,
        choices: &[Choice],
    ) -> Result<Variants, Error> {
        let attesting = inputs.provenance.is_some();
        let attested_choices: Vec<&Choice> =
            choices.iter().filter(|c| attesting && c.attest).collect();
        let mut needed: Vec<Info> = choices
            .iter()
            .map(|c| c.info)
            .filter(|&i| i != Info::Off)
            .collect();
        // Attestations record the sources also for outputs without build
        // info: they are computed as for the default.
        if attested_choices.iter().any(|c| c.info == Info::Off) {
            needed.push(Info::Sources);
        }
        let mut computed = BTreeMap::new();
        let mut full = BTreeMap::new();
        for info in needed {
            if computed.contains_key(&info) {
                continue;
            }
            let plan = config::Plan {
                sources: &inputs.sources,
                attrs: &inputs.attrs,
                keep_attrs: info == Info::WithAttrs,
            };
            let outcome = config::rewrite(image, &plan).map_err(|source| ImageError {
                image: image.name().to_string(),
                step: Step::BuildInfo,
                source,
            })?;
            let keys = response_keys(&outcome);
            full.extend(outcome.full);
            let image = match outcome.image {
                Some(rewritten) => Arc::new(rewritten),
                None => image.clone(),
            };
            computed.insert(info, Variant { image, keys });
        }
        let mut variants = Variants {
            original: image.clone(),
            computed,
            attested: BTreeMap::new(),
            attesting,
        };
        if let Some(request) = &inputs.provenance {
            variants.attest(image, (inputs, request), attested_choices, &full)?;
        }
        Ok(variants)
    }

    /// Attaches a provenance attestation, as `request` asks, to the
    /// variant of each of `choices` (once per build-info choice, subject
    /// names and form) of `image`; `full` holds every platform's build info.
    fn attest(
        &mut self,
        image: &Arc<Image>,
        (inputs, request): (&BuildInputs, &provenance::Request),
        choices: Vec<&Choice>,
        full: &BTreeMap<String, sources::BuildInfo>,
    ) -> Result<(), Error> {
        let redacted: (Vec<Source>, BTreeMap<&String, String>) = (
            sources::dedup(inputs.sources.clone()),
            inputs
                .attrs
                .iter()
                .map(|(k, v)| (k, sources::redact(v)))
                .collect(),
        );
        let seed = serde_json::to_string(&redacted).unwrap_or_default();
        let invocation_id = request.invocation_id(&seed);
        let finished = request.finished();
        for choice in choices {
            let key = (choice.info, choice.names.clone(), choice.oci_artifact);
            if self.attested.contains_key(&key) {
                continue;
            }
            let base = self.base(choice.info);
            let plan = provenance::Attach {
                request,
                names: &choice.names,
                infos: full,
                invocation_id: &invocation_id,
                finished,
                oci_artifact: choice.oci_artifact,
            };
            let attested = provenance::attach(&base, &plan).map_err(|source| ImageError {
                image: image.name().to_string(),
                step: Step::Provenance,
                source,
            })?;
            self.attested.insert(key, Arc::new(attested));
        }
        Ok(())
    }

    /// The image with the build info `info` chose, before attestations.
    fn base(&self, info: Info) -> Arc<Image> {
        match info {
            Info::Off => self.original.clone(),
            _ => self
                .computed
                .get(&info)
                .map_or_else(|| self.original.clone(), |v| v.image.clone()),
        }
    }

    /// The image for an output that made `choice`.
    pub fn image(&self, choice: &Choice) -> Arc<Image> {
        if self.attesting && choice.attest {
            let key = (choice.info, choice.names.clone(), choice.oci_artifact);
            if let Some(image) = self.attested.get(&key) {
                return image.clone();
            }
        }
        self.base(choice.info)
    }

    /// Sets the host-owned build-info keys of a response: a guest's own
    /// `containerimage.buildinfo*` keys are removed, then the variant's
    /// keys (none for `buildinfo=false`) are added.
    pub fn respond(&self, choice: &Choice, response: &mut BTreeMap<String, String>) {
        response.retain(|k, _| !k.starts_with(RESPONSE_KEY));
        if choice.info == Info::Off {
            return;
        }
        if let Some(v) = self.computed.get(&choice.info) {
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
        let choice = take_options("0", &mut o).unwrap();
        assert_eq!(choice.info, Info::Off);
        assert!(choice.attest);
        assert_eq!(choice.names, ["docker.io/library/x:latest"]);
        assert_eq!(o, opts(&[("name", "x"), ("tar", "true")]));

        let mut o = opts(&[("buildinfo-attrs", "true"), ("attest", "false")]);
        let choice = take_options("0", &mut o).unwrap();
        assert_eq!((choice.info, choice.attest), (Info::WithAttrs, false));
        assert!(o.is_empty());

        let mut o = opts(&[("buildinfo", "false"), ("buildinfo-attrs", "true")]);
        assert_eq!(take_options("0", &mut o).unwrap().info, Info::Off);

        let mut o = opts(&[("name", "a:1,b"), ("name", "a:1")]);
        let choice = take_options("0", &mut o).unwrap();
        assert_eq!(choice.info, Info::Sources);
        assert_eq!(
            choice.names,
            ["docker.io/library/a:1", "docker.io/library/b:latest"]
        );

        let err = |pairs: &[(&str, &str)]| {
            take_options("out", &mut opts(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(err(&[("buildinfo", "no")]).contains("expected true or false"));
        assert!(err(&[("buildinfo", "no")]).contains("output out"));
        assert!(err(&[("buildinfo", "true"), ("buildinfo", "true")]).contains("more than once"));
        assert!(err(&[("attest", "1")]).contains("expected true or false"));
    }

    #[test]
    fn oci_artifact_defaults_as_buildkit() {
        let choice = |pairs: &[(&str, &str)]| take_options("0", &mut opts(pairs));
        assert!(choice(&[]).unwrap().oci_artifact);
        assert!(!choice(&[("oci-artifact", "false")]).unwrap().oci_artifact);
        // Docker media types have no artifacts: the default follows them.
        let mut o = opts(&[("oci-mediatypes", "false")]);
        assert!(!take_options("0", &mut o).unwrap().oci_artifact);
        assert_eq!(o, opts(&[("oci-mediatypes", "false")]));
        let err = choice(&[("oci-mediatypes", "false"), ("oci-artifact", "true")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("oci-artifact=true conflicts with oci-mediatypes=false"),
            "{err}"
        );
        assert!(choice(&[("oci-artifact", "yes")]).is_err());
    }
}
