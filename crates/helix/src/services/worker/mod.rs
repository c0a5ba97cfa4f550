//! worker: background jobs (replaces the Celery worker).
//!
//! Runs a [`helix_jobs::Worker`] over the queues `HELIX_WORKER_QUEUES` names, on the engine
//! `HELIX_QUEUE_BACKEND` picks (see `shared::jobs`), beside its `/health` and `/metrics`. The
//! worker stops fetching when shutdown begins, lets running jobs finish for
//! `HELIX_WORKER_GRACE_SECS`, then releases the rest so another worker takes them at once.

use std::time::Duration;

use helix_jobs::worker::parse_queues;
use helix_jobs::{Worker, WorkerOptions};

use crate::platform::catalog::{Need, ServiceSpec, VarSpec};
use crate::services::discord_bot::logs as discord;
use crate::services::ServiceState;
use crate::shared::jobs::QUEUE_BACKEND_VAR;

mod metrics;

pub const QUEUES_VAR: &str = "HELIX_WORKER_QUEUES";
pub const CONCURRENCY_VAR: &str = "HELIX_WORKER_CONCURRENCY";
pub const GRACE_VAR: &str = "HELIX_WORKER_GRACE_SECS";
/// The platform's queues: its general jobs; webhook deliveries with room for many slow
/// endpoints at once (a delivery mostly waits on the network: with 200 slots, 100 endpoints
/// timing out cost the healthy ones a third of their throughput in the benchmark, with 1000
/// hardly anything) and the failing endpoints' lane; and Discord log messages, a few at a time
/// (Discord's webhooks allow a handful of requests per second).
pub const DEFAULT_QUEUES: &str =
    "default;webhooks:concurrency=1000,timeout=180;webhooks-slow:concurrency=100,timeout=180;discord:concurrency=2";

/// What worker declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "worker",
    port: Some(8010),
    postgres: Need::Yes,
    redis: Need::Yes,
    about: "Background jobs (replaces the Celery worker).",
    postgres_why: "the rows jobs write; the jobs themselves with HELIX_QUEUE_BACKEND=database",
    redis_why: "the job broker (HELIX_QUEUE_BACKEND=redis, the default when REDIS_URL is set)",
    vars: &[
        QUEUE_BACKEND_VAR,
        VarSpec::optional(
            QUEUES_VAR,
            "queues to work on: `a,b`, or with settings `a;b:concurrency=4,lease=60,attempts=5,timeout=300,rate=50`",
        )
        .fallback(DEFAULT_QUEUES),
        VarSpec::optional(CONCURRENCY_VAR, "jobs run at once per queue unless a queue sets its own")
            .integer(1, 10_000)
            .fallback("10"),
        VarSpec::optional(
            GRACE_VAR,
            "seconds running jobs get to finish at shutdown before they are released (keep it under HELIX_SHUTDOWN_TIMEOUT_SECS)",
        )
        .integer(0, 3_600)
        .fallback("7"),
        crate::shared::outbound::ALLOW_VAR,
        crate::services::zapier_integration::TIMEOUT_VAR,
        // discord.post jobs read the webhook URLs here: the payload names only the channel.
        discord::WEBHOOK_COMMANDS,
        discord::WEBHOOK_API,
        discord::WEBHOOK_HEARTBEAT,
        discord::WEBHOOK_FILE_CHANGES,
        discord::WEBHOOK_CONSCIOUSNESS,
        discord::WEBHOOK_ALERTS,
        discord::WEBHOOK_HASH_CHAIN,
    ],
    api_ready: false,
};

/// Start the worker loop as one of the service's tasks: it ends when the service stops.
pub fn start(state: &ServiceState) -> anyhow::Result<()> {
    let Some(jobs) = state.jobs() else {
        anyhow::bail!("worker started without a job backend");
    };
    let env = state.env();
    let concurrency = env.integer(CONCURRENCY_VAR).unwrap_or(10) as u32;
    let queues = parse_queues(env.get(QUEUES_VAR).unwrap_or(DEFAULT_QUEUES), concurrency)
        .map_err(|e| anyhow::anyhow!("{QUEUES_VAR}: {e}"))?;
    let options = WorkerOptions {
        grace: Duration::from_secs(env.integer(GRACE_VAR).unwrap_or(7) as u64),
        ..WorkerOptions::default()
    };
    let names: Vec<_> = queues.iter().map(|q| q.name.clone()).collect();
    tracing::info!(
        backend = %jobs.backend().describe(),
        queues = %names.join(","),
        kinds = %jobs.registry().names().collect::<Vec<_>>().join(","),
        "worker ready"
    );
    let worker = Worker::new(
        jobs.backend().clone(),
        jobs.registry().clone(),
        queues,
        options,
    );
    metrics::export(state, &worker);
    state.tasks().spawn(worker.run(state.stopping().clone()));
    Ok(())
}
