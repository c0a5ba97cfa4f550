//! `helix migrate`: apply the schema to the selected database. Idempotent, and safe to run from
//! several processes at once (the store takes a database-wide lock).

use super::Failure;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show which migrations are applied
    #[arg(long)]
    pub status: bool,
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let (store, _) = super::schema_owner::open(&config).await?;
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
