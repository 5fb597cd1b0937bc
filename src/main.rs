//! The `pennypost` binary: parses the command line and hands over to [`pennypost::cli`].

fn main() -> std::process::ExitCode {
    pennypost::cli::main()
}
