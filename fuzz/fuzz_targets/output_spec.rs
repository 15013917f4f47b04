//! The `--output` parser: any string gives a spec or an error, never a
//! panic, and instance IDs are assigned without one either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outport::OutputSpec;

fuzz_target!(|spec: &str| {
    if let Ok(parsed) = OutputSpec::parse(spec) {
        let _ = outport::assign_ids(std::slice::from_ref(&parsed));
    }
});
