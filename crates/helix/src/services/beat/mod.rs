//! beat: the periodic scheduler (replaces Celery beat).
//!
//! Runs a [`helix_jobs::schedule::Beat`] over the schedules in the database, enqueueing into the
//! job engine `HELIX_QUEUE_BACKEND` picks (see `shared::jobs`), beside its `/health` and
//! `/metrics`. Any number of beats may run: each fire time gives one job (an idempotent enqueue,
//! then a compare-and-set on the schedule; see `helix_jobs::schedule`), so a second beat is a hot
//! standby, not a doubler.

use helix_jobs::schedule::{self, Beat};

use crate::platform::catalog::{Need, ServiceSpec};
use crate::services::ServiceState;
use crate::shared::jobs::QUEUE_BACKEND_VAR;

/// What beat declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "beat",
    port: Some(8011),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Periodic scheduler (replaces Celery beat); several may run, each due time fires once.",
    postgres_why: "the schedules and each one's next fire time",
    redis_why: "the job broker it enqueues into (HELIX_QUEUE_BACKEND=redis, the default when REDIS_URL is set)",
    vars: &[QUEUE_BACKEND_VAR],
    api_ready: false,
};

/// Start the beat loop as one of the service's tasks: it ends when the service stops.
pub fn start(state: &ServiceState) -> anyhow::Result<()> {
    let (Some(jobs), Some(store)) = (state.jobs(), state.store()) else {
        anyhow::bail!("beat started without a job backend and a database");
    };
    let schedules = schedule::open(&**store);
    tracing::info!(
        schedules = %store.describe(),
        jobs = %jobs.backend().describe(),
        "beat ready"
    );
    let beat = Beat::new(schedules, jobs.backend().clone());
    state.tasks().spawn(beat.run(state.stopping().clone()));
    Ok(())
}
