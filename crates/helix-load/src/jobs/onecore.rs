//! One `helix_jobs::Worker` on one core: a thread of its own running a tokio `current_thread`
//! runtime, with its own connections (opened on that runtime, so no I/O of the worker is driven
//! by the client's threads). SQLite is the exception: the worker shares the client's store, as
//! every service of the embedded deployment does in its one process (a second store would be a
//! second writer, waiting in SQLite's busy handler; sqlx runs each SQLite connection on a thread
//! of its own anyway). It runs until its queue's `completed` counter (outcomes stored by
//! the backend) reaches a target, then shuts down gracefully.
//!
//! The clock starts when the worker starts (after connecting) and stops at the first check that
//! sees the target: checks run every millisecond on the worker's own runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use helix_jobs::worker::{CountersSnapshot, QueueCounters};
use helix_jobs::{JobBackend, QueueConfig, Registry, Worker, WorkerOptions};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::fixture::Fixture;
use super::{progress, usage, Engine};

/// What to run and until when.
pub struct Plan {
    pub registry: Registry,
    pub queue: QueueConfig,
    pub options: WorkerOptions,
    /// Stop once this many jobs are completed.
    pub target: u64,
    /// Give up (an error) if the target is not reached this long after the start.
    pub limit: Duration,
    /// Names the progress lines.
    pub label: String,
}

/// What the worker did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// From the worker's start to the check that saw the target.
    pub elapsed: Duration,
    /// CPU time of the worker's thread over `elapsed`.
    pub thread_cpu: Duration,
    pub counters: CountersSnapshot,
}

/// A worker thread that has connected and started.
pub struct Started {
    done: oneshot::Receiver<Result<Ran>>,
    thread: std::thread::JoinHandle<()>,
}

/// Start the worker thread; returns once its worker runs.
pub async fn start(fixture: Fixture, plan: Plan, shared: Option<Shared>) -> Result<Started> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("jobs-worker".into())
        .spawn(move || {
            let out = thread_main(fixture, plan, shared, ready_tx);
            let _ = done_tx.send(out);
        })?;
    let started = Started { done, thread };
    if ready_rx.await.is_err() {
        // The thread ended before starting its worker: its result says why.
        return Err(started
            .finish()
            .await
            .err()
            .unwrap_or_else(|| anyhow!("worker ended")));
    }
    Ok(started)
}

impl Started {
    /// Wait for the worker to reach its target (or fail) and its thread to end.
    pub async fn finish(self) -> Result<Ran> {
        let out = self
            .done
            .await
            .map_err(|_| anyhow!("the worker thread panicked"))?;
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await?
            .map_err(|_| anyhow!("the worker thread panicked"))?;
        out
    }
}

/// A backend the worker uses instead of opening its own.
pub type Shared = Arc<dyn JobBackend>;

/// The backend the client opened, when the worker should share it (SQLite).
pub fn shared_for(fixture: &Fixture, client: &Shared) -> Option<Shared> {
    (fixture.engine == Engine::Sqlite).then(|| client.clone())
}

fn thread_main(
    fixture: Fixture,
    plan: Plan,
    shared: Option<Shared>,
    ready: oneshot::Sender<()>,
) -> Result<Ran> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(work(fixture, plan, shared, ready))
}

async fn work(
    fixture: Fixture,
    plan: Plan,
    shared: Option<Shared>,
    ready: oneshot::Sender<()>,
) -> Result<Ran> {
    let (backend, opened) = match shared {
        Some(backend) => (backend, None),
        None => {
            let opened = fixture.open().await?;
            (opened.backend.clone(), Some(opened))
        }
    };
    let worker = Worker::new(
        backend,
        Arc::new(plan.registry),
        vec![plan.queue.clone()],
        plan.options,
    );
    let counters = worker.counters()[&plan.queue.name].clone();
    let stop = CancellationToken::new();
    let cpu_before = usage::thread_cpu();
    let start = Instant::now();
    let running = tokio::spawn(worker.run(stop.clone()));
    let _ = ready.send(());
    let reached = wait_for(&counters, plan.target, plan.limit, &plan.label).await;
    let ran = Ran {
        elapsed: start.elapsed(),
        thread_cpu: usage::thread_cpu().saturating_sub(cpu_before),
        counters: counters.snapshot(),
    };
    stop.cancel();
    let _ = running.await;
    if let Some(opened) = opened {
        opened.close().await;
    }
    if !reached {
        bail!(
            "the worker completed {} of {} jobs in {:.0} s",
            ran.counters.completed,
            plan.target,
            plan.limit.as_secs_f64()
        );
    }
    Ok(ran)
}

/// Check every millisecond until `target` jobs are completed; false when `limit` ran out first.
async fn wait_for(counters: &QueueCounters, target: u64, limit: Duration, label: &str) -> bool {
    let start = Instant::now();
    let mut next_line = start + progress::EVERY;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let done = counters.completed.load(Ordering::Relaxed);
        if done >= target {
            return true;
        }
        let now = Instant::now();
        if now.duration_since(start) > limit {
            return false;
        }
        if now >= next_line {
            eprintln!("{}", progress::line(label, done, target, now - start));
            next_line = now + progress::EVERY;
        }
    }
}
