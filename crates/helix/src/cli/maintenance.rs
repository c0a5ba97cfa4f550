//! `helix maintenance on|off|status`: the same switch as the admin endpoint, for operators with
//! access to the database. Written durably (and audited) in the database, then announced on the
//! bus when the deployment has Redis; services that miss the announcement read the database
//! within a second.

use helix_bus::BusOptions;
use helix_store::audit::AuditEvent;
use serde_json::json;

use super::Failure;
use crate::config::Config;
use crate::platform::catalog::REDIS_URL;
use crate::platform::runtime::StartError;
use crate::shared::maintenance::{self, Switch};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: MaintenanceCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCommand {
    /// Every service answers 503 (except /health, /metrics and the admin switch)
    On {
        /// What clients are told
        #[arg(long)]
        message: Option<String>,
        /// Seconds clients are told to wait (Retry-After)
        #[arg(long, value_name = "SECS")]
        retry_after: Option<u64>,
    },
    /// Back to normal
    Off,
    /// Show the switch as stored
    Status,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let (store, env) = super::schema_owner::open(&config).await?;
    let switch = match args.command {
        MaintenanceCommand::Status => {
            let stored = store
                .meta_get(maintenance::KEY)
                .await
                .map_err(StartError::from)?;
            let switch = stored
                .and_then(|raw| serde_json::from_str::<Switch>(&raw).ok())
                .filter(|s| s.on);
            match switch {
                Some(s) => println!(
                    "maintenance: on since {} — {}",
                    s.since.to_rfc3339(),
                    s.message
                ),
                None => println!("maintenance: off"),
            }
            store.close().await;
            return Ok(());
        }
        MaintenanceCommand::On {
            message,
            retry_after,
        } => maintenance::switch(true, message, retry_after)
            .map_err(|(field, why)| anyhow::anyhow!("--{}: {why}", field.replace('_', "-")))?,
        MaintenanceCommand::Off => Switch::off(),
    };
    let audit = AuditEvent::new("maintenance_changed")
        .target("maintenance")
        .detail(json!({"on": switch.on, "message": switch.message, "via": "cli"}));
    store
        .meta_put_audited(maintenance::KEY, &switch.to_json(), audit)
        .await
        .map_err(StartError::from)?;
    store.close().await;
    if let Some(url) = env.get(REDIS_URL) {
        let options = BusOptions {
            prefix: config.settings.bus_prefix.clone(),
            connect_attempts: config.settings.connect_attempts,
            ..BusOptions::default()
        };
        let bus = helix_bus::open(Some(url), &options)
            .await
            .map_err(StartError::from)?;
        maintenance::announce(&*bus, &switch).await;
        bus.close().await;
    }
    println!("maintenance: {}", if switch.on { "on" } else { "off" });
    Ok(())
}
