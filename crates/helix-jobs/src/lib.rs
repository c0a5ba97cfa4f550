//! Helix jobs: background jobs and the periodic scheduler that replace Celery.
//!
//! Owns one job state machine (see [`model`]) and everything around it:
//! - [`JobBackend`]: the contract a queue engine keeps, with three engines: `redis` (the
//!   platform's broker; Lua scripts, one per step), `postgres` (`FOR UPDATE SKIP LOCKED`,
//!   `NOTIFY` as a hint) and `sqlite` (the embedded default). The same conformance suite
//!   (`tests/conformance.rs`) runs on each.
//! - typed job kinds (a name, a serde payload and a handler) and the client that enqueues them;
//! - the worker runtime that fetches, runs, retries and finishes jobs;
//! - schedules and the beat that fires them exactly once per due time.
//!
//! Data flow: a service enqueues through the client → the backend stores the job and wakes
//! workers → a worker fetches as many jobs as it has free slots (each under a lease with a fencing
//! token) → runs each handler under its timeout → reports outcomes in batches → the backend
//! moves each job on, or refuses a report whose token is stale.

use std::sync::Arc;

pub mod backend;
pub mod backoff;
pub mod client;
mod error;
pub mod kind;
pub mod model;
pub mod postgres;
pub mod redis;
pub mod schedule;
pub mod sqlite;
pub mod worker;

pub use backend::{BackendKind, JobBackend, Wakeups};
pub use client::{EnqueueOptions, Jobs, OnDuplicate};
pub use error::JobError;
pub use kind::{JobContext, JobFailure, JobKind, Noop, NoopPayload, Registry};
pub use model::{
    AttemptError, Claim, Enqueued, FetchRequest, Finish, Job, JobId, JobState, ListFilter, NewJob,
    Outcome, QueueStats, Ticket, Unique,
};
pub use worker::{QueueConfig, Worker, WorkerOptions};

/// Where the jobs live.
#[derive(Clone)]
pub enum Target<'a> {
    /// A Redis server; every key starts with `prefix` (empty in production, unique per test).
    Redis { url: &'a str, prefix: &'a str },
    /// The database of an open store (its migrations create the job tables).
    Store(Arc<dyn helix_store::Store>),
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Redis { prefix, .. } => write!(f, "Target::Redis {{ prefix: {prefix:?} }}"),
            Target::Store(store) => write!(f, "Target::Store({})", store.describe()),
        }
    }
}

/// Open the job backend a target names.
pub async fn open(target: Target<'_>) -> Result<Arc<dyn JobBackend>, JobError> {
    match target {
        Target::Redis { url, prefix } => Ok(Arc::new(redis::RedisJobs::open(url, prefix).await?)),
        Target::Store(store) => {
            match store.pools() {
                helix_store::Pools::Postgres(pool) => {
                    Ok(Arc::new(postgres::PgJobs::new(pool, store.describe())))
                }
                helix_store::Pools::Sqlite { read, write } => Ok(Arc::new(
                    sqlite::SqliteJobs::new(read, write, store.describe()),
                )),
            }
        }
    }
}
