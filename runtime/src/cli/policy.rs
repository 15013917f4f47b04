//! `outport policy show`: the effective sandbox policy.

use std::path::Path;

use crate::Limits;
use crate::sandbox::policy::Policy;

use super::error::{CliError, CliResult, EXIT_OK};

pub fn show(path: Option<&Path>) -> CliResult {
    let policy = match path {
        None => Policy::default(),
        Some(path) => Policy::load(path).map_err(CliError::usage)?,
    };
    let source = match path {
        Some(p) => format!("from {}", p.display()),
        None => "no --policy given: the defaults".to_string(),
    };
    print!(
        "# effective outport policy ({source})\n\
         # network: a component reaches only its network-hosts, through wasi:http;\n\
         # without an entry none, except the registry exporter, which may reach\n\
         # the registries named in its name= options.\n\
         # fuel is not metered unless a limit sets it (fuel = N).\n{}",
        policy.effective(&Limits::default()).to_toml()
    );
    Ok(EXIT_OK)
}
