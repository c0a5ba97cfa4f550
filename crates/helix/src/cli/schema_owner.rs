//! The database (and environment) commands work on: the one a service resolves to —
//! backend-api, the owner of the schema, for most; the worker's and the beat's for `helix jobs`
//! and `helix schedule`.

use std::sync::Arc;

use helix_store::{Store, StoreOptions};

use super::Failure;
use crate::config::resolve::Mode;
use crate::config::{Config, ConfigError, ServiceEnv};
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate, Planned};
use crate::platform::runtime::StartError;
use crate::shared::redact;

/// Open backend-api's database, and return its resolved environment beside it.
pub async fn open(config: &Config) -> Result<(Arc<dyn Store>, ServiceEnv), Failure> {
    let planned = plan(config, "backend-api")?;
    let store = open_database(config, &planned).await?;
    Ok((store, planned.env))
}

/// The variables a command cannot do without: where the rows and the jobs are.
const STOPPERS: &[&str] = &[
    catalog::DATABASE_URL,
    catalog::REDIS_URL,
    crate::shared::jobs::QUEUE_BACKEND_VAR.name,
];

/// Resolve one service's configuration as `helix serve` would, without creating anything;
/// problems with its database, Redis, queue backend or the manifest itself stop the command (others, such as a missing
/// secret the command does not use, do not).
pub fn plan(config: &Config, service: &str) -> Result<Planned, Failure> {
    let spec = catalog::find(service).expect("a catalog service");
    let deployment = Deployment::plan(
        config,
        Mode::Up,
        Default::default(),
        &[spec],
        Generate::ReadOnly,
    );
    let errors: Vec<_> = deployment
        .errors()
        .into_iter()
        .filter(|p| p.var.as_deref().is_none_or(|v| STOPPERS.contains(&v)))
        .collect();
    if !errors.is_empty() {
        return Err(ConfigError::Problems(errors).into());
    }
    let planned = deployment
        .services
        .into_iter()
        .next()
        .expect("one service planned");
    planned.env.secret_values().for_each(redact::register);
    Ok(planned)
}

/// Open the database a planned service uses.
pub async fn open_database(config: &Config, planned: &Planned) -> Result<Arc<dyn Store>, Failure> {
    let url = planned
        .config
        .database
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} has no database", planned.env.spec.name))?
        .url()
        .to_owned();
    let options = StoreOptions {
        connect_attempts: config.settings.connect_attempts,
        schema: config.settings.db_schema.clone(),
        ..StoreOptions::default()
    };
    Ok(helix_store::open(&url, &options)
        .await
        .map_err(StartError::from)?)
}

/// [`open_database`], migrated: what `helix jobs` and `helix schedule` use, so they work before
/// any service has started (migrating is idempotent and locked against concurrent runs).
pub async fn open_migrated(config: &Config, planned: &Planned) -> Result<Arc<dyn Store>, Failure> {
    let store = open_database(config, planned).await?;
    store.migrate().await.map_err(StartError::from)?;
    Ok(store)
}
