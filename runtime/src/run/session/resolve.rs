//! Where a session's instances get their components: a built-in, a
//! component file (`type=wasm,component=PATH` or a plugin) or a registry
//! reference, checked against the policy's pinning, compiled and linked
//! once per run, with the network the instance may reach.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Session;
use crate::components::artifact::{self, Reference};
use crate::components::builtin::{self, Builtin};
use crate::components::plugins;
use crate::engine::compile::CompileLimits;
use crate::engine::{Compiled, Origin};
use crate::error::Error;
use crate::sandbox::imports;
use crate::sandbox::limits::Limits;
use crate::sandbox::reach::{self, Reach};

/// A component found for an instance: its name (a built-in's, or the
/// file's path), bytes, digest, and the limits the policy gives it.
pub(super) struct Resolved {
    name: String,
    /// The name the policy knows it by: a built-in's name, or a
    /// component file's name without `.wasm`.
    policy_name: String,
    /// Not built in: compiled in a bounded child process, pinned by policy.
    third_party: bool,
    /// What it may reach when the policy does not say.
    reach: Reach,
    wasm: Cow<'static, [u8]>,
    digest: String,
    pub(super) limits: Limits,
}

impl Session {
    /// The component of an instance of type `kind`, checked against the
    /// policy's pinning when it is third-party, with the instance's limits.
    /// `what` names the instance in errors.
    pub(super) fn resolve(
        &self,
        what: &str,
        kind: &str,
        options: &mut Vec<(String, String)>,
        builtins: (&[Builtin], &[(&str, &str)]),
    ) -> Result<Resolved, Error> {
        let (name, policy_name, wasm, reach) = match self.source(what, kind, options, builtins)? {
            Source::Builtin(builtin) => (
                builtin.name.to_string(),
                builtin.name.to_string(),
                Cow::Borrowed(builtin.wasm),
                Some(builtin.reach),
            ),
            Source::File(path) => {
                let name = path.display().to_string();
                let bytes = std::fs::read(&path).map_err(|e| {
                    Error::Usage(format!("{what}: cannot read component {name}: {e}"))
                })?;
                (name, file_stem(&path), Cow::Owned(bytes), None)
            }
            Source::Ref(reference, insecure) => {
                let bytes = self.pull(what, &reference, insecure)?;
                let name = reference.to_string();
                (name, reference.name().to_string(), Cow::Owned(bytes), None)
            }
        };
        let third_party = reach.is_none();
        let digest = outport_image::sha256_digest(&wasm);
        if third_party && !self.policy.allows_unpinned() && !self.policy.is_pinned(&digest) {
            return Err(Error::Usage(format!(
                "{what}: component {name} is not pinned and the policy has allow-unpinned = false; pin it with [components.\"{digest}\"]"
            )));
        }
        let limits = self.policy.limits_for(&self.limits, &policy_name, &digest);
        Ok(Resolved {
            name,
            policy_name,
            third_party,
            reach: reach.unwrap_or_default(),
            wasm,
            digest,
            limits,
        })
    }

    /// Where the component of an instance of type `kind` comes from:
    /// `type=wasm` takes its `component=PATH` out of `options`; a name of
    /// `builtins` is the built-in; any other name is a plugin file.
    fn source(
        &self,
        what: &str,
        kind: &str,
        options: &mut Vec<(String, String)>,
        (builtins, aliases): (&[Builtin], &[(&str, &str)]),
    ) -> Result<Source, Error> {
        if kind == WASM_TYPE {
            return take_component_source(what, options);
        }
        if let Some(builtin) = builtin::find(builtins, aliases, kind) {
            return Ok(Source::Builtin(builtin));
        }
        let known: Vec<&str> = builtins.iter().map(|b| b.name).collect();
        if !plugins::valid_name(kind) {
            return Err(Error::Usage(format!(
                "{what}: type {kind:?}: not built-in ({}) and not a valid plugin name (letters, digits, '-', '_', '.'; no '/' or '..')",
                known.join(", ")
            )));
        }
        self.plugins.find(kind).map(Source::File).ok_or_else(|| {
            Error::Usage(format!(
                "{what}: unknown type {kind:?}: not built-in ({}) and no {kind}.wasm in the plugin directories (searched: {}); or type={WASM_TYPE},component=PATH",
                known.join(", "),
                self.plugins.searched()
            ))
        })
    }

    /// The bytes of the component `reference` points at, pulled by the
    /// host (over plain HTTP when `insecure`) or found in the pulled
    /// components' cache under the engine's cache directory.
    fn pull(&self, what: &str, reference: &Reference, insecure: bool) -> Result<Vec<u8>, Error> {
        let client =
            artifact::Client::new(reference.clone(), insecure, what, self.reporter.clone())
                .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
        let cache = self.engine.cache_dir().map(artifact::cache_dir);
        let pulled = artifact::block_on(client.pull(cache.as_deref()))
            .map_err(|e| Error::Usage(format!("{what}: ref {reference}: {e}")))?
            .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
        artifact::log_pulled(self.reporter.as_ref(), what, reference, &pulled);
        Ok(pulled.bytes)
    }
    /// The component `resolved`: from `loaded` (keyed by digest, so a file
    /// named like a built-in is not mistaken for it), else compiled (a
    /// third-party component in a bounded child process, its imports
    /// checked against what the sandbox grants (`wasi:http` only with
    /// `network`)), and linked by `link`; remembered, so each component is
    /// compiled and linked once per run.
    pub(super) fn load_once<T: Clone>(
        &self,
        loaded: &mut HashMap<String, T>,
        resolved: &Resolved,
        network: bool,
        link: impl FnOnce(&str, Compiled) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if let Some(found) = loaded.get(&resolved.digest) {
            return Ok(found.clone());
        }
        let name = &resolved.name;
        let origin = if resolved.third_party {
            Origin::ThirdParty(CompileLimits::from(&resolved.limits))
        } else {
            Origin::BuiltIn
        };
        let compiled = self.engine.compile(name, &resolved.wasm, &origin)?;
        // Built-ins are part of the binary; what they import is by design.
        let extra = self
            .policy
            .imports_for(&resolved.policy_name, &resolved.digest);
        let grants = imports::Grants {
            network,
            imports: &extra,
        };
        if resolved.third_party
            && let Some(import) =
                imports::first_denied(self.engine.wasmtime(), &compiled.component, grants)
        {
            let hint = imports::how_to_grant(&import, &resolved.policy_name);
            return Err(Error::Import(name.clone(), import, hint));
        }
        let component = link(name, compiled)?;
        loaded.insert(resolved.digest.clone(), component.clone());
        Ok(component)
    }

    /// The hosts the instance `what` of `resolved` with `options` may
    /// reach, and the storage endpoint whose requests the host signs (the
    /// secrets among `options` taken out): see [`reach::network`].
    pub(super) fn network(
        &self,
        what: &str,
        resolved: &Resolved,
        options: &mut Vec<(String, String)>,
    ) -> Result<
        (
            crate::sandbox::allow_list::AllowList,
            Option<crate::outbound::signing::Signing>,
        ),
        Error,
    > {
        let configured = self
            .policy
            .network_for(&resolved.policy_name, &resolved.digest);
        reach::network(
            what,
            (resolved.reach, &resolved.policy_name),
            configured,
            options,
        )
    }
}

/// The name a policy knows a component file by: its file name without
/// `.wasm`.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Where an output's component comes from.
enum Source {
    /// A built-in exporter, embedded in the binary.
    Builtin(Builtin),
    /// A component file (`type=wasm,component=PATH` or a plugin): third-party.
    File(PathBuf),
    /// A component in a registry (`type=wasm,ref=REF`, plain HTTP with
    /// `registry.insecure=true`): third-party.
    Ref(Reference, bool),
}

/// The `type=` of a component given by path.
pub const WASM_TYPE: &str = "wasm";

/// Takes the host-owned options of a `type=wasm` instance (`what` names it
/// in errors): `component=PATH`, or `ref=REF` and `registry.insecure=`.
fn take_component_source(what: &str, options: &mut Vec<(String, String)>) -> Result<Source, Error> {
    let mut taken: Vec<(String, String)> = Vec::new();
    options.retain(|(k, v)| {
        let ours = matches!(k.as_str(), "component" | "ref" | REF_INSECURE);
        if ours {
            taken.push((k.clone(), v.clone()));
        }
        !ours
    });
    let usage = |m: String| Error::Usage(format!("{what}: {m}"));
    for key in ["component", "ref", REF_INSECURE] {
        if taken.iter().filter(|(k, _)| k == key).count() > 1 {
            return Err(usage(format!("{key}= is given more than once")));
        }
    }
    let get = |key: &str| {
        taken
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let insecure = match get(REF_INSECURE) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(usage(format!(
                "{REF_INSECURE}={other:?}: expected true or false"
            )));
        }
    };
    match (get("component"), get("ref")) {
        (Some(path), None) if get(REF_INSECURE).is_none() => Ok(Source::File(path.into())),
        (Some(_), None) => Err(usage(format!(
            "{REF_INSECURE}= goes with ref=, not component="
        ))),
        (None, Some(reference)) => Reference::parse(reference)
            .map(|r| Source::Ref(r, insecure))
            .map_err(|e| usage(e.to_string())),
        (Some(_), Some(_)) => Err(usage(
            "give component=PATH or ref=REF, not both".to_string(),
        )),
        (None, None) => Err(usage(format!(
            "type={WASM_TYPE} needs component=PATH or ref=HOST[:PORT]/REPO:TAG"
        ))),
    }
}

/// The option of a `type=wasm,ref=` instance that pulls over plain HTTP.
const REF_INSECURE: &str = "registry.insecure";
