//! `helix up`: every service in one process, each on its own port.

use super::{start, Failure};
use crate::config::resolve::Mode;
use crate::config::Config;
use crate::platform::deployment::{Deployment, Generate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not apply pending migrations at start
    #[arg(long)]
    pub no_migrate: bool,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let deployment = Deployment::plan_all(&config, Mode::Up, Generate::Create).into_startable()?;
    let host = config
        .settings
        .host
        .clone()
        .unwrap_or_else(|| "127.0.0.1".into());
    let migrate = config.settings.migrate_on_start && !args.no_migrate;
    start::run(&config.settings, deployment, &host, migrate).await
}
