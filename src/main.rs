//! The `gait` binary: parse the command line and run it.

fn main() -> std::process::ExitCode {
    gait::cli::main()
}
