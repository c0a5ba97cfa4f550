//! `helix config default`: print the built-in, commented `helix.toml`.

use super::Failure;
use crate::config::manifest::DEFAULT_MANIFEST;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Print the built-in configuration, every key commented
    Default,
}

pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Sub::Default => print!("{DEFAULT_MANIFEST}"),
    }
    Ok(())
}
