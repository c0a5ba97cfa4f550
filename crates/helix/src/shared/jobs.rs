//! Where a service's jobs live, and the job kinds the platform knows.
//!
//! `HELIX_QUEUE_BACKEND` picks the engine: `redis` (the service's `REDIS_URL`, keys under
//! `HELIX_BUS_PREFIX`) or `database` (the service's database: PostgreSQL, or SQLite embedded).
//! Unset: Redis when the service has a `REDIS_URL`, else the database, so the embedded default
//! needs nothing more and a deployment with Redis keeps the platform's broker.

use std::sync::Arc;

use helix_jobs::{JobBackend, JobError, Registry, Target};
use helix_store::Store;
use secrecy::ExposeSecret;

use crate::config::{ServiceConfig, ServiceEnv};
use crate::platform::catalog::VarSpec;

pub const QUEUE_BACKEND_VAR: VarSpec = VarSpec::optional(
    "HELIX_QUEUE_BACKEND",
    "where jobs live: redis or database (default: redis when REDIS_URL is set, else the database)",
)
.one_of(&["redis", "database"]);

/// The engine a service's jobs use, as configured.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueTarget {
    /// The Redis URL (a secret: never shown).
    Redis(String),
    /// The service's database URL.
    Database(String),
}

impl QueueTarget {
    /// What `HELIX_QUEUE_BACKEND`, `REDIS_URL` and the database of one service select; an error
    /// naming the variable when the choice names a backend the service does not have.
    pub fn of(env: &ServiceEnv, config: &ServiceConfig) -> Result<Self, String> {
        let redis = config
            .redis_url
            .as_ref()
            .map(|u| u.expose_secret().to_owned());
        let database = config.database.as_ref().map(|d| d.url().to_owned());
        match (
            env.get(QUEUE_BACKEND_VAR.name).map(str::trim),
            redis,
            database,
        ) {
            (Some("redis") | None, Some(url), _) => Ok(QueueTarget::Redis(url)),
            (Some("database") | None, _, Some(url)) => Ok(QueueTarget::Database(url)),
            (Some("redis"), None, _) => {
                Err("HELIX_QUEUE_BACKEND=redis but REDIS_URL is not set".into())
            }
            _ => Err("jobs need a database or a REDIS_URL".into()),
        }
    }

    /// Open the backend: Redis under `prefix`, or the given store's database.
    pub async fn open(
        &self,
        store: Option<&Arc<dyn Store>>,
        prefix: &str,
    ) -> Result<Arc<dyn JobBackend>, JobError> {
        match (self, store) {
            (QueueTarget::Redis(url), _) => helix_jobs::open(Target::Redis { url, prefix }).await,
            (QueueTarget::Database(_), Some(store)) => {
                helix_jobs::open(Target::Store(store.clone())).await
            }
            (QueueTarget::Database(_), None) => {
                Err(JobError::Backend("no database is open for the jobs".into()))
            }
        }
    }
}

/// The job kinds anything can enqueue or inspect without a database (the built-in `noop`).
pub fn registry() -> Arc<Registry> {
    Arc::new(Registry::new())
}

/// Every job kind the platform's services define, for a service with a store: the kinds that
/// carry webhooks out need it (and the job backend, to queue what they fan out), and so does
/// `discord.post` (which channels are disabled).
pub fn registry_for(
    store: Option<&Arc<dyn Store>>,
    backend: &Arc<dyn JobBackend>,
    env: &ServiceEnv,
) -> Arc<Registry> {
    let mut registry = Registry::new();
    if let Some(store) = store {
        crate::services::zapier_integration::register(
            &mut registry,
            store.clone(),
            backend.clone(),
            env,
        );
        crate::services::discord_bot::register(&mut registry, store.clone(), env);
    }
    Arc::new(registry)
}
