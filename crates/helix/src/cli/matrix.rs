//! `helix matrix`: the connection matrix generated from the catalog.

use super::Failure;
use crate::platform::matrix::{self, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub fn run(args: Args) -> Result<(), Failure> {
    print!("{}", matrix::render(args.format));
    Ok(())
}
