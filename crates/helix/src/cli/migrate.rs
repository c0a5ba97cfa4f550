//! `helix migrate`: apply the schema to the selected database. Idempotent, and safe to run from
//! several processes at once (the store takes a database-wide lock).

use helix_store::StoreOptions;

use super::Failure;
use crate::config::resolve::Mode;
use crate::config::{Config, ConfigError};
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate};
use crate::shared::redact;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show which migrations are applied
    #[arg(long)]
    pub status: bool,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let url = database_url(&config)?;
    let options = StoreOptions {
        connect_attempts: config.settings.connect_attempts,
        schema: config.settings.db_schema.clone(),
        ..StoreOptions::default()
    };
    let store = helix_store::open(&url, &options)
        .await
        .map_err(crate::platform::runtime::StartError::from)?;
    println!("database: {}", store.describe());
    if !args.status {
        let report = store
            .migrate()
            .await
            .map_err(crate::platform::runtime::StartError::from)?;
        match report.applied.as_slice() {
            [] => println!("up to date at version {}", report.current),
            applied => println!(
                "applied {} migration(s): {applied:?}; now at version {}",
                applied.len(),
                report.current
            ),
        }
    }
    for m in store
        .migration_status()
        .await
        .map_err(crate::platform::runtime::StartError::from)?
    {
        println!(
            "  {:04} {:<30} {}",
            m.version,
            m.name,
            if m.applied { "applied" } else { "pending" }
        );
    }
    store.close().await;
    Ok(())
}

/// The database of the deployment, as backend-api (the schema's owner) resolves it.
fn database_url(config: &Config) -> Result<String, Failure> {
    let spec = catalog::find("backend-api").expect("backend-api is in the catalog");
    let deployment = Deployment::plan(
        config,
        Mode::Up,
        Default::default(),
        &[spec],
        Generate::ReadOnly,
    );
    let planned = &deployment.services[0];
    let errors: Vec<_> = deployment
        .errors()
        .into_iter()
        .filter(|p| p.var.as_deref() == Some(catalog::DATABASE_URL) || p.var.is_none())
        .collect();
    if !errors.is_empty() {
        return Err(ConfigError::Problems(errors).into());
    }
    let url = planned
        .config
        .database
        .as_ref()
        .expect("backend-api needs a database")
        .url()
        .to_owned();
    redact::register(&url);
    Ok(url)
}
