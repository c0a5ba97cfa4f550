//! The database commands work on: the one backend-api (the owner of the schema) resolves to.

use std::sync::Arc;

use helix_store::{Store, StoreOptions};

use super::Failure;
use crate::config::resolve::Mode;
use crate::config::{Config, ConfigError, ServiceEnv};
use crate::platform::catalog;
use crate::platform::deployment::{Deployment, Generate};
use crate::platform::runtime::StartError;
use crate::shared::redact;

/// Open backend-api's database, and return its resolved environment beside it.
pub async fn open(config: &Config) -> Result<(Arc<dyn Store>, ServiceEnv), Failure> {
    let spec = catalog::find("backend-api").expect("backend-api is in the catalog");
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
        .filter(|p| p.var.as_deref() == Some(catalog::DATABASE_URL) || p.var.is_none())
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
    let url = planned
        .config
        .database
        .as_ref()
        .expect("backend-api needs a database")
        .url()
        .to_owned();
    let options = StoreOptions {
        connect_attempts: config.settings.connect_attempts,
        schema: config.settings.db_schema.clone(),
        ..StoreOptions::default()
    };
    let store = helix_store::open(&url, &options)
        .await
        .map_err(StartError::from)?;
    Ok((store, planned.env))
}
