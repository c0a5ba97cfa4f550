//! `helix serve <service>`: one service alone, as a container runs it; `PORT` from the
//! environment (as a PaaS sets it) or `--port`.

use std::collections::BTreeMap;

use clap::builder::PossibleValuesParser;

use super::{start, Failure};
use crate::config::resolve::Mode;
use crate::config::Config;
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service to run
    #[arg(value_parser = PossibleValuesParser::new(catalog::names()))]
    pub service: String,
    /// Listen on this port (overrides PORT)
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not apply pending migrations at start
    #[arg(long)]
    pub no_migrate: bool,
    /// worker only: jobs run at once per queue (overrides HELIX_WORKER_CONCURRENCY)
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// worker only: the queues to work on, `a,b` (overrides HELIX_WORKER_QUEUES)
    #[arg(long)]
    pub queues: Option<String>,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let spec = catalog::find(&args.service).expect("clap accepted only catalog names");
    let mut flags: BTreeMap<String, String> = args
        .port
        .map(|p| (catalog::PORT.to_owned(), p.to_string()))
        .into_iter()
        .collect();
    worker_flags(spec.name, &args, &mut flags)?;
    let mode = Mode::Serve(spec.name.to_owned());
    let deployment =
        Deployment::plan(&config, mode, flags, &[spec], Generate::Create).into_startable()?;
    let host = config
        .settings
        .host
        .clone()
        .unwrap_or_else(|| "0.0.0.0".into());
    let migrate = config.settings.migrate_on_start && !args.no_migrate;
    start::run(&config.settings, deployment, &host, migrate).await
}

/// `--concurrency` and `--queues` set the worker's variables; any other service refuses them.
fn worker_flags(
    service: &str,
    args: &Args,
    flags: &mut BTreeMap<String, String>,
) -> Result<(), Failure> {
    use crate::services::worker::{CONCURRENCY_VAR, QUEUES_VAR};
    if args.concurrency.is_none() && args.queues.is_none() {
        return Ok(());
    }
    if service != "worker" {
        return Err(anyhow::anyhow!("--concurrency and --queues apply to the worker only").into());
    }
    if let Some(n) = args.concurrency {
        flags.insert(CONCURRENCY_VAR.to_owned(), n.to_string());
    }
    if let Some(q) = &args.queues {
        flags.insert(QUEUES_VAR.to_owned(), q.clone());
    }
    Ok(())
}
