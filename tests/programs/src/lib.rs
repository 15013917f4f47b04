//! Paths of the test guests, components that misbehave on purpose so the
//! end-to-end tests can check how the runtime contains them. Each is run with
//! `outport export ... --output type=wasm,component=PATH,...`.

include!(concat!(env!("OUT_DIR"), "/test_programs.rs"));
include!(concat!(env!("OUT_DIR"), "/wat_programs.rs"));
