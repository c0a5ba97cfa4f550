//! The `helix` binary: parse the command line and dispatch; the library does the work.

use std::process::ExitCode;

use clap::Parser;

/// Why not the system allocator: see the workspace manifest (a sixth of the CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    helix::cli::run(helix::cli::Cli::parse())
}
