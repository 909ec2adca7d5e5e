//! `genretag`: no subcommand opens the desktop app; subcommands are the CLI.

fn main() -> std::process::ExitCode {
    genretag::tune_allocator();
    genretag::cli::main()
}
