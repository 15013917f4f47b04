//! The in-toto statement about one image manifest, with its SLSA provenance
//! v1 predicate, in the key order of BuildKit's Go structs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    Attach, BUILD_TYPE, Dependency, Mode, PREDICATE_TYPE, STATEMENT_TYPE, dependencies, image_purl,
    rfc3339,
};
use crate::buildinfo::sources::BuildInfo;

/// The in-toto statement about the manifest `digest` for `platform`.
pub(super) fn statement(
    plan: &Attach,
    digest: &str,
    platform: &str,
    info: &BuildInfo,
) -> Statement {
    let hex = digest
        .strip_prefix(outport_oci::digest::SHA256_PREFIX)
        .unwrap_or(digest);
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
pub(super) struct Statement {
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
