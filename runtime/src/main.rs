//! The `outport` command: a thin layer over the `outport` library, whose
//! `cli` module parses the command line and maps errors to exit codes.

fn main() -> std::process::ExitCode {
    outport::cli::main()
}
