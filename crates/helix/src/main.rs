//! The `helix` binary: parse the command line and dispatch; the library does the work.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    helix::cli::run(helix::cli::Cli::parse())
}
