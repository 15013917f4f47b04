//! `outport policy show`: the effective sandbox policy.

use std::path::Path;

use outport::Limits;
use outport::policy::Policy;

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
         # network-hosts are checked and shown, but the runtime links no wasi:http\n\
         # yet: no component can reach any network, whatever they say.\n\
         # fuel is not metered unless a limit sets it (fuel = N).\n{}",
        policy.effective(&Limits::default()).to_toml()
    );
    EXIT_OK
}
