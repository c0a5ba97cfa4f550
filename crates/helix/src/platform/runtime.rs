//! Opening the backends a deployment needs: one store per distinct database URL and one bus per
//! distinct Redis URL (or the in-process bus), shared by every service that declared them, and a
//! usage recorder (a write-behind buffer onto its store) for each service that meters calls.
//!
//! Closing runs after every service has stopped: recorders write what they buffered first, then
//! stores and buses close.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use helix_bus::{Bus, BusError, BusOptions};
use helix_jobs::{JobBackend, JobError};
use helix_store::{Store, StoreError, StoreOptions};
use secrecy::ExposeSecret;

use super::deployment::{Deployment, Planned};
use crate::config::Settings;
use crate::services::ServiceState;
use crate::shared::jobs::{QueueTarget, QUEUE_BACKEND_VAR};
use crate::shared::usage::{self, UsageRecorder};

/// A failure to start that is not a configuration mistake. Exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("jobs: {0}")]
    Jobs(#[from] JobError),
    #[error("{service}: {reason}")]
    Service { service: String, reason: String },
    #[error("{service}: cannot listen on {addr}: {reason}")]
    Bind {
        service: String,
        addr: String,
        reason: String,
    },
}

/// The open backends of one process.
#[derive(Default)]
pub struct Backends {
    stores: BTreeMap<String, Arc<dyn Store>>,
    buses: BTreeMap<Option<String>, Arc<dyn Bus>>,
    /// One job backend per engine, for the services that declare `HELIX_QUEUE_BACKEND`.
    jobs: BTreeMap<QueueTarget, Arc<dyn JobBackend>>,
    bus_prefix: String,
    /// By service name: one per service that meters calls, so its handlers and `close` share it.
    recorders: BTreeMap<&'static str, UsageRecorder>,
    /// How long `close` lets recorders write what they buffered.
    drain_grace: Duration,
}

impl Backends {
    /// Open every backend the planned services declared, each once.
    pub async fn open(deployment: &Deployment, settings: &Settings) -> Result<Self, StartError> {
        let mut backends = Self {
            drain_grace: settings.shutdown_timeout,
            bus_prefix: settings.bus_prefix.clone(),
            ..Self::default()
        };
        let store_options = StoreOptions {
            max_connections: settings.db_pool_size,
            connect_attempts: settings.connect_attempts,
            schema: settings.db_schema.clone(),
            ..StoreOptions::default()
        };
        let bus_options = BusOptions {
            prefix: settings.bus_prefix.clone(),
            connect_attempts: settings.connect_attempts,
            ..BusOptions::default()
        };
        for planned in &deployment.services {
            if let Some(db) = &planned.config.database {
                if !backends.stores.contains_key(db.url()) {
                    let store = helix_store::open(db.url(), &store_options).await?;
                    backends.stores.insert(db.url().to_owned(), store);
                }
                backends.add_recorder(planned, &backends.stores[db.url()].clone());
            }
            if planned.env.spec.redis.is_needed() {
                let key = redis_key(planned);
                if let std::collections::btree_map::Entry::Vacant(slot) = backends.buses.entry(key)
                {
                    let bus = helix_bus::open(slot.key().as_deref(), &bus_options).await?;
                    slot.insert(bus);
                }
            }
        }
        Ok(backends)
    }

    /// Open the job backend of every service that declared one (after `migrate`, since the
    /// database engines need their tables).
    pub async fn open_jobs(&mut self, deployment: &Deployment) -> Result<(), StartError> {
        for planned in &deployment.services {
            let Some(target) = queue_target(planned)? else {
                continue;
            };
            if self.jobs.contains_key(&target) {
                continue;
            }
            let store = match &target {
                QueueTarget::Database(url) => self.stores.get(url),
                QueueTarget::Redis(_) => None,
            };
            let backend = target.open(store, &self.bus_prefix).await?;
            self.jobs.insert(target, backend);
        }
        Ok(())
    }

    /// A service that declares the usage flush variable meters calls: give it a recorder.
    fn add_recorder(&mut self, planned: &Planned, store: &Arc<dyn Store>) {
        if planned.env.spec.variable(usage::FLUSH_VAR).is_none() {
            return;
        }
        let options = usage::Options::with_interval_ms(planned.env.integer(usage::FLUSH_VAR));
        let recorder = UsageRecorder::spawn(Arc::clone(store), options);
        self.recorders.insert(planned.env.spec.name, recorder);
    }

    /// Apply pending migrations on every open store.
    pub async fn migrate(&self) -> Result<(), StartError> {
        for store in self.stores.values() {
            let report = store.migrate().await?;
            if report.applied.is_empty() {
                tracing::info!(store = %store.describe(), version = report.current, "database schema is up to date");
            } else {
                tracing::info!(store = %store.describe(), applied = ?report.applied, "applied database migrations");
            }
        }
        Ok(())
    }

    /// The state of one service, holding only the handles it declared.
    pub fn state_for(&self, planned: &Planned) -> ServiceState {
        let store = planned
            .config
            .database
            .as_ref()
            .and_then(|db| self.stores.get(db.url()).cloned());
        let bus = self.buses.get(&redis_key(planned)).cloned();
        let usage = self.recorders.get(planned.env.spec.name).cloned();
        let jobs = queue_target(planned)
            .ok()
            .flatten()
            .and_then(|t| self.jobs.get(&t).cloned());
        ServiceState::new(planned.env.clone(), &planned.config, store, bus, usage).with_jobs(jobs)
    }

    /// Short descriptions of the backends a service uses, for the start-up table.
    pub fn describe_for(&self, planned: &Planned) -> (Option<String>, Option<String>) {
        let state = self.state_for(planned);
        (
            state.store().map(|s| s.describe()),
            state.bus().map(|b| b.describe()),
        )
    }

    /// Write what the usage recorders buffered (call it once the services have stopped, so nothing
    /// more arrives), then close every store and bus.
    pub async fn close(&self) {
        for recorder in self.recorders.values() {
            recorder.close(self.drain_grace).await;
        }
        for store in self.stores.values() {
            store.close().await;
        }
        for bus in self.buses.values() {
            bus.close().await;
        }
    }
}

/// The job engine a service uses, if it declares one.
fn queue_target(planned: &Planned) -> Result<Option<QueueTarget>, StartError> {
    if planned.env.spec.variable(QUEUE_BACKEND_VAR.name).is_none() {
        return Ok(None);
    }
    QueueTarget::of(&planned.env, &planned.config)
        .map(Some)
        .map_err(|reason| StartError::Jobs(JobError::Backend(reason)))
}

fn redis_key(planned: &Planned) -> Option<String> {
    planned
        .config
        .redis_url
        .as_ref()
        .map(|u| u.expose_secret().to_owned())
}
