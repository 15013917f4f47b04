//! What a component asks for: its imports and exports, read from the
//! compiled component's type, and the rule deciding which imports the
//! sandbox grants. A component importing anything else is refused before
//! it is instantiated, naming the import.
//!
//! Granted to every component: the contract (`outport:exporter/*`),
//! `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:filesystem` (which sees
//! only the destination) and `wasi:cli`'s environment, exit, standard
//! streams and terminal interfaces (the environment and arguments are
//! empty, stdin is empty, stdout and stderr become log lines). Granted only
//! to a component whose policy entry names network hosts: `wasi:http`.
//! Granted only when the component's policy entry lists it in `imports`
//! (a package such as `wasi:sockets`, or one interface): anything else the
//! runtime links — in practice `wasi:sockets`, which Python and JavaScript
//! runtimes import whether or not they use it; every socket operation stays
//! denied at run time.

use wasmtime::component::Component;

/// The package of the contract.
pub const CONTRACT_PACKAGE: &str = "outport:exporter";

/// What a policy grants one component beyond the default set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Grants<'a> {
    /// Whether it may reach some network host (`wasi:http`).
    pub network: bool,
    /// Packages (`wasi:sockets`) or interfaces (`wasi:sockets/tcp`) its
    /// entry's `imports` lists.
    pub imports: &'a [String],
}

/// Whether the sandbox grants the import `name` (`wasi:io/streams@0.2.6`)
/// to a component given `grants`.
pub fn granted(name: &str, grants: Grants) -> bool {
    let unversioned = name.split('@').next().unwrap_or(name);
    let Some((package, interface)) = unversioned.split_once('/') else {
        return false;
    };
    if grants
        .imports
        .iter()
        .any(|g| g == package || g == unversioned)
    {
        return true;
    }
    match package {
        CONTRACT_PACKAGE | "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:filesystem" => true,
        "wasi:cli" => matches!(
            interface,
            "environment"
                | "exit"
                | "stdin"
                | "stdout"
                | "stderr"
                | "terminal-input"
                | "terminal-output"
                | "terminal-stdin"
                | "terminal-stdout"
                | "terminal-stderr"
        ),
        "wasi:http" => grants.network,
        _ => false,
    }
}

/// How a policy entry for component `policy_name` would grant `import`.
pub fn how_to_grant(import: &str, policy_name: &str) -> String {
    let unversioned = import.split('@').next().unwrap_or(import);
    match unversioned.split_once('/') {
        Some(("wasi:http", _)) => {
            format!("give [components.\"{policy_name}\"] network-hosts = [\"HOST:PORT\"]")
        }
        Some((package, _)) => {
            let note = if package == "wasi:sockets" {
                "; its socket operations stay denied"
            } else {
                ""
            };
            format!(
                "[components.\"{policy_name}\"] imports = [\"{package}\"] would let it run{note}"
            )
        }
        None => "nothing grants it".to_string(),
    }
}

/// The first import of `component` the sandbox does not grant, if any.
pub fn first_denied(
    engine: &wasmtime::Engine,
    component: &Component,
    grants: Grants,
) -> Option<String> {
    Identity::of(engine, component)
        .imports
        .into_iter()
        .find(|name| !granted(name, grants))
}

/// A component's imports and exports, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Imported names, in the component's order.
    pub imports: Vec<String>,
    /// Exported names, in the component's order.
    pub exports: Vec<String>,
}

impl Identity {
    /// Reads the names from the component's type.
    pub fn of(engine: &wasmtime::Engine, component: &Component) -> Identity {
        let ty = component.component_type();
        Identity {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }

    /// The world it targets: `exporter` when it exports `export`,
    /// `cache-backend` when it exports `export-cache` and `import-cache`.
    pub fn world(&self) -> Option<&'static str> {
        let has = |name: &str| self.exports.iter().any(|e| e == name);
        if has("describe") && has("validate") {
            if has("export") {
                return Some("exporter");
            }
            if has("export-cache") && has("import-cache") {
                return Some("cache-backend");
            }
        }
        None
    }

    /// The contract version it was built against, from the version of the
    /// `outport:exporter/*` interfaces it imports.
    pub fn contract_version(&self) -> Option<&str> {
        self.imports.iter().find_map(|name| {
            let rest = name.strip_prefix(CONTRACT_PACKAGE)?.strip_prefix('/')?;
            rest.split_once('@').map(|(_, version)| version)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_granted_set() {
        for name in [
            "outport:exporter/image@0.1.0",
            "wasi:io/streams@0.2.12",
            "wasi:filesystem/preopens@0.2.12",
            "wasi:cli/environment@0.2.6",
            "wasi:random/insecure-seed@0.2.6",
        ] {
            assert!(granted(name, Grants::default()), "{name}");
        }
        for name in [
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:cli/run@0.2.6",
            "example:evil/thing",
            "bare-function",
        ] {
            assert!(!granted(name, Grants::default()), "{name}");
        }
        let network = Grants {
            network: true,
            imports: &[],
        };
        assert!(granted("wasi:http/outgoing-handler@0.2.6", network));
        assert!(!granted("wasi:sockets/tcp@0.2.6", network));
        let package = ["wasi:sockets".to_string()];
        let sockets = Grants {
            network: false,
            imports: &package,
        };
        assert!(granted("wasi:sockets/tcp@0.2.6", sockets));
        assert!(granted("wasi:sockets/network@0.2.9", sockets));
        assert!(!granted("wasi:http/types@0.2.6", sockets));
        let interface = ["wasi:sockets/network".to_string()];
        let one = Grants {
            network: false,
            imports: &interface,
        };
        assert!(granted("wasi:sockets/network@0.2.9", one));
        assert!(!granted("wasi:sockets/tcp@0.2.6", one));
    }
}
