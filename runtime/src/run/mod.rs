//! A run: the output specs it is given, the session that plans and runs
//! every instance at once, and the reporter that tells the person running
//! it what happens.

pub mod cache_plan;
pub mod context;
pub mod output_spec;
pub mod reporter;
pub mod session;
mod tasks;
