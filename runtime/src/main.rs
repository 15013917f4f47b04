//! The `outport` command: a thin layer over the `outport` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
