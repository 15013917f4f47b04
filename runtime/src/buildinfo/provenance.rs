//! SLSA provenance attestations (`--attest provenance[,mode=min|max]`), laid
//! out as BuildKit lays them out, so that tools reading BuildKit's read
//! outport's.
//!
//! For each image manifest of an output's image (after build info), the
//! host writes an in-toto Statement v1 whose subject is that manifest and
//! whose predicate is SLSA provenance v1, built from the same sources as
//! the build info ([`super::config::Outcome::full`]). It goes into an
//! *attestation manifest*: an OCI image manifest with an `unknown/unknown`
//! config and one `application/vnd.in-toto+json` layer, listed after the
//! image manifests of the index that holds the subject, with platform
//! `unknown/unknown` and the annotations `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest: <subject>`. A
//! single-platform image (the root is a manifest) becomes an index of the
//! manifest and its attestation, as BuildKit does when it attests. Every
//! other blob is shared with the image attested; the input's own
//! provenance-only attestation manifests of an attested manifest are
//! replaced (their subjects no longer match once the manifest changed),
//! other attestations (SBOMs) are kept.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use outport_image::Image;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::config::{
    ANN_REFERENCE_DIGEST, ANN_REFERENCE_TYPE, CONFIG_TYPES, Entry, INDEX_TYPES, MANIFEST_TYPES,
    RawObject, platform_key, read_json_blob,
};
use super::sources::{BuildInfo, Source, TYPE_GIT, TYPE_IMAGE, normalize_image_ref};

/// Output option: `false` leaves that output without attestations.
pub const OPT_ATTEST: &str = "attest";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance v1 predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// BuildKit's build type, which tools reading BuildKit's provenance expect.
pub const BUILD_TYPE: &str = "https://mobyproject.org/buildkit@v1";
/// The default `runDetails.builder.id`.
pub const BUILDER_ID: &str = "outport";
/// Media type of the attestation layer.
pub const MT_IN_TOTO: &str = "application/vnd.in-toto+json";
/// Annotation of the attestation layer naming its predicate type.
pub const ANN_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// `vnd.docker.reference.type` of an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// How much the provenance says, as BuildKit's `mode=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Frontend and the non-secret-prone request arguments: `build-arg:*`
    /// and `label:*` attributes are left out (BuildKit's default).
    #[default]
    Min,
    /// Every build attribute.
    Max,
}

/// What `--attest` asked for, for the whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `mode=`.
    pub mode: Mode,
    /// `builder-id=` (default [`BUILDER_ID`]).
    pub builder_id: String,
    /// `SOURCE_DATE_EPOCH`, when set: every timestamp, and the invocation
    /// ID derives from it, so the same inputs give the same attestations.
    pub source_date_epoch: Option<i64>,
    /// When the run started (seconds since the epoch).
    pub started: i64,
}

impl Request {
    /// Parses the `--attest` values (`provenance`, `type=provenance`,
    /// `mode=min|max`, `builder-id=ID`, `disabled=true|false`, as buildx
    /// takes them) and `SOURCE_DATE_EPOCH`. `None` when nothing is asked.
    /// The error is one line naming the value.
    pub fn from_args(
        attest: &[String],
        source_date_epoch: Option<&str>,
    ) -> Result<Option<Request>, String> {
        let mut request: Option<Request> = None;
        let mut seen = false;
        for value in attest {
            let bad = |why: String| format!("--attest {value:?}: {why}");
            let mut kind = None;
            let mut mode = Mode::Min;
            let mut builder_id = BUILDER_ID.to_string();
            let mut disabled = false;
            for field in value.split(',').map(str::trim) {
                let (k, v) = match field.split_once('=') {
                    Some((k, v)) => (k.trim(), v.trim()),
                    None if kind.is_none() => ("type", field),
                    None => return Err(bad(format!("{field:?} is not KEY=VALUE"))),
                };
                match k {
                    "type" if kind.is_none() => kind = Some(v.to_string()),
                    "mode" => {
                        mode = match v {
                            "min" => Mode::Min,
                            "max" => Mode::Max,
                            _ => return Err(bad(format!("mode={v:?}: expected min or max"))),
                        }
                    }
                    "builder-id" if !v.is_empty() => builder_id = v.to_string(),
                    "disabled" => {
                        disabled = match v {
                            "true" => true,
                            "false" => false,
                            _ => {
                                return Err(bad(format!("disabled={v:?}: expected true or false")));
                            }
                        }
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown or repeated field {field:?} (known: type=provenance, mode=min|max, builder-id=ID, disabled=true|false)"
                        )));
                    }
                }
            }
            match kind.as_deref() {
                Some("provenance") => {}
                None | Some("") => return Err(bad("no type (expected type=provenance)".into())),
                Some(other) => {
                    return Err(bad(format!(
                        "attestation type {other:?} is not supported (only provenance)"
                    )));
                }
            }
            if seen {
                return Err(bad("provenance is asked for more than once".into()));
            }
            seen = true;
            if !disabled {
                request = Some(Request {
                    mode,
                    builder_id,
                    source_date_epoch: None,
                    started: 0,
                });
            }
        }
        let Some(mut request) = request else {
            return Ok(None);
        };
        let epoch = match source_date_epoch.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                format!("SOURCE_DATE_EPOCH={s:?}: expected a number of seconds since 1970")
            })?),
            None => None,
        };
        request.source_date_epoch = epoch;
        request.started = epoch.unwrap_or_else(now);
        Ok(Some(request))
    }

    /// The invocation ID shared by every statement of a run: with
    /// `SOURCE_DATE_EPOCH`, derived from it and `inputs` (what the run was
    /// told, credentials stripped), so that attesting an attested image
    /// again with the same inputs gives the same bytes; unique otherwise.
    pub fn invocation_id(&self, inputs: &str) -> String {
        let seed = match self.source_date_epoch {
            Some(epoch) => format!("{epoch} {:?} {} {inputs}", self.mode, self.builder_id),
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                format!("{nanos} {} {inputs}", std::process::id())
            }
        };
        let digest = outport_image::sha256_digest(seed.as_bytes());
        digest.trim_start_matches("sha256:")[..32].to_string()
    }

    /// When the attestations are made.
    pub fn finished(&self) -> i64 {
        self.source_date_epoch.unwrap_or_else(now)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (UTC).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// What one output's attestations are made of.
pub struct Attach<'a> {
    /// The run's request.
    pub request: &'a Request,
    /// The output's image names (`name=`), normalised; none gives the
    /// subject name `_`, as BuildKit.
    pub names: &'a [String],
    /// The complete build info of each image manifest, by digest.
    pub infos: &'a BTreeMap<String, BuildInfo>,
    /// The run's invocation ID.
    pub invocation_id: &'a str,
    /// When the attestations are made (seconds since the epoch).
    pub finished: i64,
}

/// A copy of `input` with a provenance attestation manifest for each of
/// its image manifests, sharing every blob of `input`.
pub fn attach(input: &Image, plan: &Attach) -> Result<Image, String> {
    let mut walk = Walk {
        image: input.clone(),
        plan,
    };
    let root = input.root().clone();
    let entry = Entry::from_descriptor(&root);
    let media_type = entry.media_type.as_str();
    let new_root = if INDEX_TYPES.contains(&media_type) {
        match walk.visit_index(&entry, 0)? {
            Some(d) => with_annotations(d, &root),
            None => return Ok(input.clone()),
        }
    } else if MANIFEST_TYPES.contains(&media_type) {
        let Some((platform, attestation)) = walk.attest(&entry)? else {
            return Ok(input.clone());
        };
        let manifest = Descriptor {
            media_type: entry.media_type.clone(),
            digest: entry.digest.clone(),
            size: root.size(),
            annotations: None,
            platform: Some(platform),
        };
        let index = Index {
            schema_version: 2,
            media_type: MT_OCI_INDEX,
            manifests: vec![manifest, attestation],
        };
        let d = walk.image.insert_blob(MT_OCI_INDEX, to_json(&index));
        with_annotations(d, &root)
    } else {
        return Ok(input.clone());
    };
    walk.image.set_root(new_root);
    Ok(walk.image)
}

/// `new` with the annotations of `old` (the name annotations a layout's
/// `index.json` gave the root).
fn with_annotations(
    mut new: oci_spec::image::Descriptor,
    old: &oci_spec::image::Descriptor,
) -> oci_spec::image::Descriptor {
    new.set_annotations(old.annotations().clone());
    new
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings, numbers and maps always serialise.
    serde_json::to_vec(value).expect("a JSON document serialises")
}

/// An OCI descriptor, fields in the order Go (BuildKit) writes them.
#[derive(Serialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

impl Descriptor {
    fn of(d: &oci_spec::image::Descriptor) -> Descriptor {
        Descriptor {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: d.size(),
            annotations: None,
            platform: None,
        }
    }
}

#[derive(Serialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
}

impl Platform {
    /// From `os/arch[/variant]`.
    fn parse(key: &str) -> Platform {
        let mut parts = key.splitn(3, '/');
        let os = parts.next().unwrap_or_default().to_string();
        let architecture = parts.next().unwrap_or_default().to_string();
        let variant = parts.next().unwrap_or_default().to_string();
        Platform {
            architecture,
            os,
            variant,
        }
    }
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

struct Walk<'a> {
    image: Image,
    plan: &'a Attach<'a>,
}

impl Walk<'_> {
    fn read(&self, digest: &str) -> Result<Vec<u8>, String> {
        read_json_blob(&self.image, digest)
    }

    /// Adds attestations to the index `entry` points at (and to the indexes
    /// it holds); its new descriptor, or `None` when nothing was attested.
    fn visit_index(
        &mut self,
        entry: &Entry,
        depth: usize,
    ) -> Result<Option<oci_spec::image::Descriptor>, String> {
        if depth > 8 {
            return Err(format!("{}: indexes nested too deeply", entry.digest));
        }
        let what = |e: String| format!("index {}: {e}", entry.digest);
        let bytes = self.read(&entry.digest)?;
        let mut index = RawObject::parse(&bytes).map_err(what)?;
        let Some(children) = index.get::<Vec<RawObject>>("manifests") else {
            return Ok(None);
        };
        let mut kept: Vec<Box<RawValue>> = Vec::with_capacity(children.len() * 2);
        let mut added: Vec<Box<RawValue>> = Vec::new();
        let mut existing: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut attested: Vec<String> = Vec::new();
        let mut changed = false;
        for mut child in children {
            let child_entry = Entry::from_raw(&child);
            let raw = |c: &RawObject| c.to_raw().map_err(what);
            if child_entry
                .annotations
                .get(ANN_REFERENCE_TYPE)
                .map(String::as_str)
                == Some(ATTESTATION_MANIFEST)
            {
                let subject = child_entry
                    .annotations
                    .get(ANN_REFERENCE_DIGEST)
                    .cloned()
                    .unwrap_or_default();
                let keep = if self.is_provenance_only(&child_entry.digest) {
                    subject
                } else {
                    String::new()
                };
                existing.push((keep, raw(&child)?));
                continue;
            }
            if INDEX_TYPES.contains(&child_entry.media_type.as_str()) {
                if let Some(d) = self.visit_index(&child_entry, depth + 1)? {
                    changed = true;
                    child.set("digest", &d.digest().to_string());
                    child.set("size", &d.size());
                }
            } else if MANIFEST_TYPES.contains(&child_entry.media_type.as_str())
                && let Some((_, attestation)) = self.attest(&child_entry)?
            {
                attested.push(child_entry.digest.clone());
                added.push(
                    serde_json::value::to_raw_value(&attestation)
                        .map_err(|e| what(e.to_string()))?,
                );
            }
            kept.push(raw(&child)?);
        }
        if added.is_empty() && !changed {
            return Ok(None);
        }
        // Existing attestations stay (after the image manifests, as
        // BuildKit orders them), but not the provenance we replace.
        kept.extend(
            existing
                .into_iter()
                .filter(|(subject, _)| subject.is_empty() || !attested.contains(subject))
                .map(|(_, raw)| raw),
        );
        kept.extend(added);
        index.set("manifests", &kept);
        Ok(Some(
            self.image.insert_blob(&entry.media_type, index.to_vec()),
        ))
    }

    /// Whether the attestation manifest `digest` holds provenance only.
    fn is_provenance_only(&self, digest: &str) -> bool {
        let Ok(bytes) = self.read(digest) else {
            return false;
        };
        let Ok(manifest) = serde_json::from_slice::<Value>(&bytes) else {
            return false;
        };
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        !layers.is_empty()
            && layers.iter().all(|l| {
                l["annotations"][ANN_PREDICATE_TYPE]
                    .as_str()
                    .is_some_and(|t| t.starts_with("https://slsa.dev/provenance/"))
            })
    }

    /// Makes the attestation manifest of the image manifest `entry` points
    /// at; its platform and its index entry. `None` for a manifest that is
    /// not an image's (no image config).
    fn attest(&mut self, entry: &Entry) -> Result<Option<(Platform, Descriptor)>, String> {
        let what = |e: String| format!("manifest {}: {e}", entry.digest);
        let manifest = RawObject::parse(&self.read(&entry.digest)?).map_err(what)?;
        let Some(config) = manifest.get::<RawObject>("config") else {
            return Ok(None);
        };
        let config = Entry::from_raw(&config);
        if !CONFIG_TYPES.contains(&config.media_type.as_str()) {
            return Ok(None);
        }
        let config_value: Value =
            serde_json::from_slice(&self.read(&config.digest)?).unwrap_or(Value::Null);
        let platform = platform_key(entry.platform.as_ref(), &config_value);
        let info = self
            .plan
            .infos
            .get(&entry.digest)
            .cloned()
            .unwrap_or_default();
        let statement = statement(self.plan, &entry.digest, &platform, &info);

        let layer = self.image.insert_blob(MT_IN_TOTO, to_json(&statement));
        // BuildKit's attestation config, in Go's field order.
        let image_config = format!(
            r#"{{"architecture":"unknown","os":"unknown","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            layer.digest()
        );
        let config = self
            .image
            .insert_blob(MT_OCI_CONFIG, image_config.into_bytes());
        let mut layer = Descriptor::of(&layer);
        layer.annotations = Some(BTreeMap::from([(
            ANN_PREDICATE_TYPE.to_string(),
            PREDICATE_TYPE.to_string(),
        )]));
        let attestation = Manifest {
            schema_version: 2,
            media_type: MT_OCI_MANIFEST,
            config: Descriptor::of(&config),
            layers: vec![layer],
        };
        let manifest = self
            .image
            .insert_blob(MT_OCI_MANIFEST, to_json(&attestation));
        let mut index_entry = Descriptor::of(&manifest);
        index_entry.annotations = Some(BTreeMap::from([
            (ANN_REFERENCE_DIGEST.to_string(), entry.digest.clone()),
            (
                ANN_REFERENCE_TYPE.to_string(),
                ATTESTATION_MANIFEST.to_string(),
            ),
        ]));
        index_entry.platform = Some(Platform::parse("unknown/unknown"));
        Ok(Some((Platform::parse(&platform), index_entry)))
    }
}

/// The in-toto statement about the manifest `digest` for `platform`.
fn statement(plan: &Attach, digest: &str, platform: &str, info: &BuildInfo) -> Statement {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let names: Vec<String> = if plan.names.is_empty() {
        vec!["_".to_string()]
    } else {
        plan.names
            .iter()
            .map(|n| image_purl(n, Some(platform)))
            .collect()
    };
    let subject: Vec<Subject> = names
        .into_iter()
        .map(|name| Subject {
            name,
            digest: BTreeMap::from([("sha256", hex.to_string())]),
        })
        .collect();

    let mut args = collect_attrs(info);
    if plan.request.mode == Mode::Min {
        args.retain(|k, _| !k.starts_with("build-arg:") && !k.starts_with("label:"));
    }
    let request = Parameters {
        frontend: info.frontend.clone(),
        args,
    };
    let version = env!("CARGO_PKG_VERSION");
    // Key order is that of BuildKit's Go structs (a serde_json `Value`
    // sorts object keys, so the documents are ordered structs).
    let predicate = Predicate {
        build_definition: BuildDefinition {
            build_type: BUILD_TYPE,
            external_parameters: ExternalParameters {
                config_source: BTreeMap::new(),
                request,
            },
            resolved_dependencies: dependencies(info),
        },
        run_details: RunDetails {
            builder: Builder {
                id: plan.request.builder_id.clone(),
                version: BTreeMap::from([("outport", version)]),
            },
            metadata: Metadata {
                invocation_id: plan.invocation_id.to_string(),
                started_on: rfc3339(plan.request.started),
                finished_on: rfc3339(plan.finished),
                completeness: Completeness {
                    request: false,
                    resolved_dependencies: false,
                },
            },
        },
    };
    Statement {
        kind: STATEMENT_TYPE,
        predicate_type: PREDICATE_TYPE,
        subject,
        predicate,
    }
}

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: &'static str,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    subject: Vec<Subject>,
    predicate: Predicate,
}

#[derive(Serialize)]
struct Subject {
    name: String,
    digest: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Predicate {
    #[serde(rename = "buildDefinition")]
    build_definition: BuildDefinition,
    #[serde(rename = "runDetails")]
    run_details: RunDetails,
}

#[derive(Serialize)]
struct BuildDefinition {
    #[serde(rename = "buildType")]
    build_type: &'static str,
    #[serde(rename = "externalParameters")]
    external_parameters: ExternalParameters,
    #[serde(rename = "resolvedDependencies")]
    resolved_dependencies: Vec<Dependency>,
}

#[derive(Serialize)]
struct ExternalParameters {
    #[serde(rename = "configSource")]
    config_source: BTreeMap<String, String>,
    request: Parameters,
}

/// The build request: BuildKit's frontend and its options (`args`).
#[derive(Serialize)]
struct Parameters {
    #[serde(skip_serializing_if = "String::is_empty")]
    frontend: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    args: BTreeMap<String, String>,
}

/// An SLSA `ResourceDescriptor`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dependency {
    /// A URL, or a package URL for an image.
    pub uri: String,
    /// `{algorithm: hex}` of the pin; absent for an unpinned source.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RunDetails {
    builder: Builder,
    metadata: Metadata,
}

#[derive(Serialize)]
struct Builder {
    id: String,
    version: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Metadata {
    #[serde(rename = "invocationID")]
    invocation_id: String,
    #[serde(rename = "startedOn")]
    started_on: String,
    #[serde(rename = "finishedOn")]
    finished_on: String,
    #[serde(rename = "buildkit_completeness")]
    completeness: Completeness,
}

/// outport relays what it is told: it never claims the request or the
/// dependencies are complete.
#[derive(Serialize)]
struct Completeness {
    request: bool,
    #[serde(rename = "resolvedDependencies")]
    resolved_dependencies: bool,
}

/// The attributes of `info` and its dependencies (the top level wins).
fn collect_attrs(info: &BuildInfo) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    for dep in info.deps.values() {
        attrs.extend(collect_attrs(dep));
    }
    for (k, v) in &info.attrs {
        if let Some(v) = v {
            attrs.insert(k.clone(), v.clone());
        }
    }
    attrs
}

/// The sources of `info` and of its dependencies, as SLSA resource
/// descriptors, each once, in the build info's order.
pub fn dependencies(info: &BuildInfo) -> Vec<Dependency> {
    fn walk(info: &BuildInfo, out: &mut Vec<Dependency>) {
        for source in &info.sources {
            let d = dependency(source);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        for dep in info.deps.values() {
            walk(dep, out);
        }
    }
    let mut out = Vec::new();
    walk(info, &mut out);
    out
}

/// One build-info source (already redacted) as an SLSA resource
/// descriptor, as BuildKit converts its sources: an image as a package URL
/// (`pkg:docker/…`), a git repository with its commit as `sha1`, an HTTP
/// file with its checksum.
pub fn dependency(source: &Source) -> Dependency {
    let uri = if source.kind == TYPE_IMAGE {
        image_purl(&source.reference, None)
    } else {
        source.reference.clone()
    };
    let mut digest = BTreeMap::new();
    let pin = source.pin.trim();
    if let Some((algorithm, hex)) = pin.split_once(':') {
        digest.insert(algorithm.to_string(), hex.to_string());
    } else if source.kind == TYPE_GIT && pin.len() == 64 {
        digest.insert("sha256".to_string(), pin.to_string());
    } else if source.kind == TYPE_GIT && !pin.is_empty() {
        digest.insert("sha1".to_string(), pin.to_string());
    } else if !pin.is_empty() {
        digest.insert("sha256".to_string(), pin.to_string());
    }
    Dependency { uri, digest }
}

/// An image reference as a package URL, as BuildKit writes them:
/// `pkg:docker/<familiar name>@<tag>?digest=…&platform=os%2Farch`
/// (`alpine:3.19` → `pkg:docker/alpine@3.19`; a reference with neither
/// tag nor digest is `@latest`).
pub fn image_purl(reference: &str, platform: Option<&str>) -> String {
    let full = normalize_image_ref(reference);
    let (name, digest) = match full.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (full.as_str(), None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let familiar = match repo.strip_prefix("docker.io/") {
        Some(rest) => match rest.strip_prefix("library/") {
            Some(one) if !one.contains('/') => one,
            _ => rest,
        },
        None => repo,
    };
    let path: Vec<String> = familiar.split('/').map(purl_escape).collect();
    let mut purl = format!("pkg:docker/{}", path.join("/"));
    match (tag, digest) {
        (Some(t), _) => purl = format!("{purl}@{}", purl_escape(t)),
        (None, None) => purl.push_str("@latest"),
        (None, Some(_)) => {}
    }
    let mut qualifiers = Vec::new();
    if let Some(d) = digest {
        qualifiers.push(format!("digest={}", purl_escape(d)));
    }
    if let Some(p) = platform {
        qualifiers.push(format!("platform={}", purl_escape(p)));
    }
    if !qualifiers.is_empty() {
        purl = format!("{purl}?{}", qualifiers.join("&"));
    }
    purl
}

/// Percent-encodes everything but unreserved characters.
fn purl_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn attest_values_parse_as_buildx() {
        let parse = |v: &[&str]| Request::from_args(&args(v), Some("10"));
        assert_eq!(parse(&[]).unwrap(), None);
        let r = parse(&["provenance"]).unwrap().unwrap();
        assert_eq!((r.mode, r.builder_id.as_str()), (Mode::Min, BUILDER_ID));
        assert_eq!((r.source_date_epoch, r.started), (Some(10), 10));
        let r = parse(&["type=provenance,mode=max,builder-id=https://ci/x"])
            .unwrap()
            .unwrap();
        assert_eq!((r.mode, r.builder_id.as_str()), (Mode::Max, "https://ci/x"));
        assert_eq!(
            parse(&["provenance,mode=max"]).unwrap().unwrap().mode,
            Mode::Max
        );
        assert_eq!(parse(&["type=provenance,disabled=true"]).unwrap(), None);
        let err = |v: &[&str]| parse(v).unwrap_err();
        assert!(err(&["sbom"]).contains("not supported"));
        assert!(err(&["provenance,mode=full"]).contains("expected min or max"));
        assert!(err(&["provenance,color=red"]).contains("unknown"));
        assert!(err(&["mode=max"]).contains("no type"));
        assert!(err(&["provenance", "provenance"]).contains("more than once"));
        assert!(err(&["provenance,type=provenance"]).contains("repeated"));
        assert!(
            Request::from_args(&args(&["provenance"]), Some("soon"))
                .unwrap_err()
                .contains("SOURCE_DATE_EPOCH")
        );
        let r = Request::from_args(&args(&["provenance"]), None)
            .unwrap()
            .unwrap();
        assert_eq!(r.source_date_epoch, None);
        assert!(r.started > 1_600_000_000);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn package_urls() {
        let cases = [
            ("alpine:3.19", None, "pkg:docker/alpine@3.19"),
            ("alpine", None, "pkg:docker/alpine@latest"),
            (
                "docker.io/outport/sample:latest",
                Some("linux/arm64/v8"),
                "pkg:docker/outport/sample@latest?platform=linux%2Farm64%2Fv8",
            ),
            (
                "ghcr.io/o/r:v1@sha256:ab",
                Some("linux/amd64"),
                "pkg:docker/ghcr.io/o/r@v1?digest=sha256%3Aab&platform=linux%2Famd64",
            ),
            (
                "tonistiigi/xx@sha256:21",
                None,
                "pkg:docker/tonistiigi/xx?digest=sha256%3A21",
            ),
            (
                "localhost:5000/x:1",
                None,
                "pkg:docker/localhost%3A5000/x@1",
            ),
        ];
        for (reference, platform, want) in cases {
            assert_eq!(image_purl(reference, platform), want, "{reference}");
        }
    }

    #[test]
    fn sources_become_resource_descriptors() {
        let s = |kind: &str, reference: &str, pin: &str| Source {
            kind: kind.into(),
            reference: reference.into(),
            alias: String::new(),
            pin: pin.into(),
        };
        let d = |uri: &str, digest: &[(&str, &str)]| Dependency {
            uri: uri.into(),
            digest: digest
                .iter()
                .map(|(a, h)| (a.to_string(), h.to_string()))
                .collect(),
        };
        let info = BuildInfo {
            sources: vec![
                s("image", "docker.io/library/alpine:3.19", "sha256:aa"),
                s("git", "https://github.com/o/r.git#main", "259a5aa5"),
                s("http", "https://h/f", "sha256:1"),
                s("http", "https://h/unpinned", ""),
            ],
            deps: BTreeMap::from([(
                "base".to_string(),
                BuildInfo {
                    sources: vec![
                        s("http", "https://h/f", "sha256:1"),
                        s("git", "https://h/r.git", &"a".repeat(64)),
                    ],
                    ..BuildInfo::default()
                },
            )]),
            ..BuildInfo::default()
        };
        assert_eq!(
            dependencies(&info),
            vec![
                d("pkg:docker/alpine@3.19", &[("sha256", "aa")]),
                d("https://github.com/o/r.git#main", &[("sha1", "259a5aa5")]),
                d("https://h/f", &[("sha256", "1")]),
                d("https://h/unpinned", &[]),
                d("https://h/r.git", &[("sha256", &"a".repeat(64))]),
            ]
        );
    }
}
