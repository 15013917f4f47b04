//! `outport policy show`: the effective sandbox policy.

use std::path::Path;

use outport::Limits;
use outport::sandbox::policy::Policy;

use super::{EXIT_OK, EXIT_USAGE};

pub fn show(path: Option<&Path>) -> u8 {
    let policy = match path.map(Policy::load) {
        None => Policy::default(),
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
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
    EXIT_OK
}
