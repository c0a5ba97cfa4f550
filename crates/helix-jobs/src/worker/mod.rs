//! The worker: runs the jobs of its queues until told to stop.
//!
//! Each queue gets its own loop ([`queue`]): slots bound how many of its jobs run at once, a fetch
//! takes as many jobs as there are free slots, each job runs in a task of its own under its
//! timeout, outcomes are stored in batches, leases are renewed while handlers run. At shutdown
//! the loops stop fetching, running jobs get `grace` to finish, and the rest are released so
//! another worker takes them at once. A pruner deletes finished jobs past their retention.
//!
//! At-least-once: a job is acknowledged only after its handler returned; a worker that dies holds
//! nothing but leases, which expire.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::JobBackend;
use crate::kind::Registry;

mod attempt;
pub mod config;
pub mod metrics;
mod queue;
mod running;

pub use config::{parse_queues, QueueConfig};
pub use metrics::{CountersSnapshot, QueueCounters};

/// How a worker behaves beyond its queues.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Shown to operators as the holder of a lease (`host:pid` by default).
    pub worker_id: String,
    /// How often an idle queue looks for work when no hint arrives (hints come from enqueues;
    /// delayed jobs and retries become due without one).
    pub poll: Duration,
    /// How long running jobs may take to finish once shutdown begins.
    pub grace: Duration,
    /// The most jobs one fetch takes.
    pub fetch_max: u32,
    /// Completed and cancelled jobs are deleted this long after they finished.
    pub keep_completed: Duration,
    /// Failed jobs (dead letters) are deleted this long after they failed.
    pub keep_failed: Duration,
    pub prune_every: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            worker_id: default_worker_id(),
            poll: Duration::from_millis(500),
            grace: Duration::from_secs(25),
            fetch_max: 500,
            keep_completed: Duration::from_secs(24 * 3600),
            keep_failed: Duration::from_secs(7 * 24 * 3600),
            prune_every: Duration::from_secs(600),
        }
    }
}

/// `host:pid`, so an operator can tell which process holds a lease.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}:{}", std::process::id())
}

/// A worker over some queues of one backend.
pub struct Worker {
    backend: Arc<dyn JobBackend>,
    registry: Arc<Registry>,
    queues: Vec<QueueConfig>,
    options: WorkerOptions,
    counters: BTreeMap<String, Arc<QueueCounters>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queues", &self.queues)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        backend: Arc<dyn JobBackend>,
        registry: Arc<Registry>,
        queues: Vec<QueueConfig>,
        options: WorkerOptions,
    ) -> Self {
        let counters = queues
            .iter()
            .map(|q| (q.name.clone(), Arc::new(QueueCounters::default())))
            .collect();
        Self {
            backend,
            registry,
            queues,
            options,
            counters,
        }
    }

    /// Each queue's counters, live (for `GET /metrics`).
    pub fn counters(&self) -> &BTreeMap<String, Arc<QueueCounters>> {
        &self.counters
    }

    /// Work until `shutdown` fires, then drain (see the module doc) and return. Dropping the
    /// future instead (an abort) stops every task of this worker at once, as a killed process
    /// would: nothing is finished or released, the leases simply expire.
    pub async fn run(self, shutdown: CancellationToken) {
        let kill = CancellationToken::new();
        let _kill_on_drop = kill.clone().drop_guard();
        let wake = match self.backend.wakeups().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "no wake-up hints; polling only");
                let (tx, rx) = tokio::sync::watch::channel(0);
                crate::backend::Wakeups {
                    rx,
                    guard: Some(Box::new(tx)),
                }
            }
        };
        let pruner_stop = CancellationToken::new();
        let pruner = spawn_until(
            &kill,
            prune_loop(
                self.backend.clone(),
                self.options.clone(),
                pruner_stop.clone(),
            ),
        );
        let mut loops = Vec::new();
        for config in &self.queues {
            let runner = Arc::new(queue::QueueRunner {
                backend: self.backend.clone(),
                registry: self.registry.clone(),
                counters: self.counters[&config.name].clone(),
                config: config.clone(),
                worker_id: self.options.worker_id.clone(),
                poll: self.options.poll,
                fetch_max: self.options.fetch_max.max(1),
                running: Default::default(),
                kill: kill.clone(),
            });
            loops.push(spawn_until(
                &kill,
                runner.run(wake.rx.clone(), shutdown.clone(), self.options.grace),
            ));
        }
        for handle in loops {
            if let Err(e) = handle.await {
                tracing::error!(error = %e, "a queue loop ended abnormally");
            }
        }
        pruner_stop.cancel();
        let _ = pruner.await;
        drop(wake);
    }
}

/// Spawn a task of this worker that ends at once when `kill` fires. Why: tasks outlive the
/// future that spawned them, so without this an aborted `run` would leave its loops fetching and
/// renewing leases.
pub(crate) fn spawn_until<F>(kill: &CancellationToken, task: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let kill = kill.clone();
    tokio::spawn(async move {
        tokio::select! {
            biased;
            () = kill.cancelled() => {}
            () = task => {}
        }
    })
}

async fn prune_loop(backend: Arc<dyn JobBackend>, options: WorkerOptions, stop: CancellationToken) {
    loop {
        match backend
            .prune(options.keep_completed, options.keep_failed)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned finished jobs"),
            Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(options.prune_every) => {}
        }
    }
}
