//! `helix agents seed`: register the platform's default roster of fourteen agents (those already
//! registered are left as they are), for operators with access to the database.

use chrono::Utc;

use super::Failure;
use crate::config::Config;
use crate::platform::runtime::StartError;
use crate::services::agent_orchestration::roster::default_roster;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: AgentsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentsCommand {
    /// Register the default roster (Kael, Lumina, Vega, … and the Discord bridge)
    Seed,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let AgentsCommand::Seed = args.command;
    let (store, _env) = super::schema_owner::open(&config).await?;
    let roster = default_roster();
    let added = store.agents().seed_agents(&roster, Utc::now()).await;
    store.close().await;
    let added = added.map_err(StartError::from)?;
    println!(
        "agents: {added} registered, {} already there",
        roster.len() - added
    );
    Ok(())
}
