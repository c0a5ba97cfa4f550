//! One queue on one worker: the fetch loop (as many jobs as free slots, never more), the job
//! tasks, the finisher that reports outcomes in batches, the lease extender, and the drain at
//! shutdown.
//!
//! A slot (semaphore permit) is taken before a fetch and given back only once the job's outcome
//! is stored, so `concurrency` bounds the leases this worker holds, and a lease starts when its
//! job starts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::backend::JobBackend;
use crate::kind::Registry;
use crate::model::{Claim, FetchRequest, Finish, Outcome, Ticket};
use crate::worker::attempt;
use crate::worker::config::QueueConfig;
use crate::worker::metrics::QueueCounters;
use crate::worker::running::Running;
use crate::worker::spawn_until;

/// What a job task hands the finisher, with the slot it held.
enum Report {
    Finish(Finish),
    /// Given up at shutdown: hand back at once.
    Release(Ticket),
    /// Its lease was lost (expired or cancelled): nothing to report.
    Forget(Ticket),
}

type Slot = OwnedSemaphorePermit;

pub(crate) struct QueueRunner {
    pub(crate) backend: Arc<dyn JobBackend>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: QueueConfig,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) worker_id: String,
    pub(crate) poll: Duration,
    pub(crate) fetch_max: u32,
    pub(crate) running: Running,
    /// Fires when the worker's `run` is dropped: every task of this queue stops at once.
    pub(crate) kill: CancellationToken,
}

impl QueueRunner {
    /// Work until `shutdown`, then let running jobs finish for up to `grace`, release the rest,
    /// and return once every outcome is stored.
    pub(crate) async fn run(
        self: Arc<Self>,
        wake: watch::Receiver<u64>,
        shutdown: CancellationToken,
        grace: Duration,
    ) {
        let slots = Arc::new(Semaphore::new(self.config.concurrency as usize));
        let abandon = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let finisher = spawn_until(&self.kill, self.clone().finish_loop(rx));
        let extender_stop = CancellationToken::new();
        let extender = spawn_until(&self.kill, self.clone().extend_loop(extender_stop.clone()));

        self.fetch_loop(&slots, &abandon, &tx, wake, &shutdown)
            .await;
        let all = self.config.concurrency;
        let drained = tokio::time::timeout(grace, slots.clone().acquire_many_owned(all)).await;
        if drained.is_err() {
            tracing::warn!(
                queue = %self.config.name,
                running = self.running.len(),
                "shutdown grace over: releasing the jobs still running"
            );
            abandon.cancel();
            let _ = slots.acquire_many_owned(all).await;
        }
        drop(tx);
        let _ = finisher.await;
        extender_stop.cancel();
        let _ = extender.await;
    }

    async fn fetch_loop(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        abandon: &CancellationToken,
        tx: &mpsc::UnboundedSender<(Report, Slot)>,
        mut wake: watch::Receiver<u64>,
        shutdown: &CancellationToken,
    ) {
        let mut limiter = self.config.rate_per_sec.map(Limiter::new);
        let mut failures = 0u32;
        loop {
            let Some(mut taken) = self.take_slots(slots, shutdown).await else {
                return;
            };
            if let Some(limiter) = &mut limiter {
                let Some(n) = limiter.take(taken.len(), shutdown).await else {
                    return;
                };
                taken.truncate(n);
            }
            wake.borrow_and_update();
            match self.fetch(taken.len()).await {
                Err(e) => {
                    failures += 1;
                    QueueCounters::add(&self.counters.backend_errors, 1);
                    self.log_fetch_error(&e, failures);
                    drop(taken);
                    let pause = Duration::from_millis(50 << failures.min(7));
                    if sleep_or_stop(pause, shutdown).await {
                        return;
                    }
                }
                Ok(claims) if claims.is_empty() => {
                    if failures > 0 {
                        tracing::info!(queue = %self.config.name, "job backend reachable again");
                        failures = 0;
                    }
                    drop(taken);
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = woken(&mut wake) => {}
                        () = tokio::time::sleep(self.poll) => {}
                    }
                }
                Ok(claims) => {
                    failures = 0;
                    QueueCounters::add(&self.counters.fetched, claims.len() as u64);
                    taken.truncate(claims.len());
                    for (claim, slot) in claims.into_iter().zip(taken) {
                        self.start(claim, slot, abandon, tx.clone());
                    }
                }
            }
        }
    }

    /// Wait for one free slot, then take every other free one up to the fetch limit.
    async fn take_slots(
        &self,
        slots: &Arc<Semaphore>,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Slot>> {
        let first = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            slot = slots.clone().acquire_owned() => slot.ok()?,
        };
        let mut taken = vec![first];
        while taken.len() < self.fetch_max as usize {
            match slots.clone().try_acquire_owned() {
                Ok(slot) => taken.push(slot),
                Err(_) => break,
            }
        }
        Some(taken)
    }

    async fn fetch(&self, max: usize) -> Result<Vec<Claim>, crate::JobError> {
        self.backend
            .fetch(&FetchRequest {
                queue: &self.config.name,
                max: max as u32,
                lease: self.config.lease,
                worker: &self.worker_id,
                max_attempts: self.config.max_attempts,
            })
            .await
    }

    fn log_fetch_error(&self, e: &crate::JobError, failures: u32) {
        // Why only some: a backend that is down for minutes would otherwise log a line per try.
        if failures == 1 || failures.is_power_of_two() {
            tracing::warn!(queue = %self.config.name, error = %e, failures, "fetch failed; retrying");
        }
    }

    fn start(
        self: &Arc<Self>,
        claim: Claim,
        slot: Slot,
        abandon: &CancellationToken,
        tx: mpsc::UnboundedSender<(Report, Slot)>,
    ) {
        let stop = abandon.child_token();
        let abandon = abandon.clone();
        self.running.insert(claim.ticket(), stop.clone());
        let me = self.clone();
        spawn_until(&self.kill, async move {
            let ticket = claim.ticket();
            let outcome = attempt::run(&me.registry, &claim, &me.config, &me.counters, stop).await;
            let report = match outcome {
                Some(outcome) => Report::Finish(Finish { ticket, outcome }),
                None if abandon.is_cancelled() => Report::Release(ticket),
                None => Report::Forget(ticket),
            };
            // Why ignore a send error: the finisher outlives every job task (it stops only when
            // all senders are gone), so this cannot fail while the queue runs.
            let _ = tx.send((report, slot));
        });
    }

    /// Store outcomes in batches: whatever has arrived since the last round trip goes in the next.
    async fn finish_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<(Report, Slot)>) {
        let mut batch = Vec::with_capacity(1024);
        while rx.recv_many(&mut batch, 1024).await > 0 {
            let mut finishes = Vec::new();
            let mut releases = Vec::new();
            for (report, _) in &batch {
                match report {
                    Report::Finish(f) => finishes.push(f.clone()),
                    Report::Release(t) => releases.push(*t),
                    Report::Forget(t) => {
                        QueueCounters::add(&self.counters.lease_lost, 1);
                        self.running.remove(*t);
                    }
                }
            }
            self.store_finishes(&finishes).await;
            self.store_releases(&releases).await;
            // Dropping the batch gives the slots back.
            batch.clear();
        }
    }

    async fn store_finishes(&self, finishes: &[Finish]) {
        if finishes.is_empty() {
            return;
        }
        let applied = self
            .persist("finish", || self.backend.finish(finishes))
            .await;
        let c = &self.counters;
        for (i, finish) in finishes.iter().enumerate() {
            self.running.remove(finish.ticket);
            let counter = match (applied.as_ref().map(|a| a[i]), &finish.outcome) {
                (Some(true), Outcome::Completed) => &c.completed,
                (Some(true), Outcome::Retry { .. }) => &c.retried,
                (Some(true), Outcome::Fail { .. }) => &c.failed,
                _ => &c.lease_lost,
            };
            QueueCounters::add(counter, 1);
        }
    }

    async fn store_releases(&self, tickets: &[Ticket]) {
        if tickets.is_empty() {
            return;
        }
        let released = self
            .persist("release", || self.backend.release(tickets))
            .await;
        let n = released.map_or(0, |r| r.iter().filter(|ok| **ok).count());
        QueueCounters::add(&self.counters.released, n as u64);
        for t in tickets {
            self.running.remove(*t);
        }
    }

    /// Retry a store call while the backend is unreachable, for up to one lease: after that the
    /// jobs have been (or will be) reclaimed anyway, and run again elsewhere.
    async fn persist<T, F, Fut>(&self, what: &str, call: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::JobError>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.lease;
        let mut pause = Duration::from_millis(50);
        loop {
            match call().await {
                Ok(v) => return Some(v),
                Err(e) => {
                    QueueCounters::add(&self.counters.backend_errors, 1);
                    if tokio::time::Instant::now() + pause > deadline {
                        tracing::error!(queue = %self.config.name, error = %e, "{what} not stored; the leases will expire and the jobs run again");
                        return None;
                    }
                    tracing::warn!(queue = %self.config.name, error = %e, "{what} failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Renew the leases of running jobs every third of a lease; stop a job whose lease is gone
    /// (reclaimed after a stall, or cancelled by an operator).
    async fn extend_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = self.config.lease / 3;
        loop {
            if sleep_or_stop(every, &stop).await {
                return;
            }
            let tickets = self.running.tickets();
            if tickets.is_empty() {
                continue;
            }
            match self.backend.extend(&tickets, self.config.lease).await {
                Ok(held) => {
                    for (ticket, held) in tickets.iter().zip(held) {
                        if !held {
                            self.running.stop(*ticket);
                        }
                    }
                }
                Err(e) => {
                    QueueCounters::add(&self.counters.backend_errors, 1);
                    tracing::warn!(queue = %self.config.name, error = %e, "lease extension failed");
                }
            }
        }
    }
}

/// True when `stop` fired before `pause` ran out.
async fn sleep_or_stop(pause: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(pause) => false,
    }
}

/// A hint arrived. A closed channel (the backend's listener is gone) never wakes; polling goes on.
async fn woken(wake: &mut watch::Receiver<u64>) {
    if wake.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Job starts per second on this worker: a token bucket holding at most one second's worth.
struct Limiter {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Limiter {
    fn new(per_sec: u32) -> Self {
        Self {
            rate: f64::from(per_sec),
            tokens: f64::from(per_sec),
            at: tokio::time::Instant::now(),
        }
    }

    /// Take up to `want` starts, waiting for the first; `None` on shutdown.
    async fn take(&mut self, want: usize, stop: &CancellationToken) -> Option<usize> {
        loop {
            let now = tokio::time::Instant::now();
            let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate);
            self.at = now;
            if self.tokens >= 1.0 {
                let n = (self.tokens.floor() as usize).min(want);
                self.tokens -= n as f64;
                return Some(n);
            }
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
            if sleep_or_stop(wait, stop).await {
                return None;
            }
        }
    }
}
