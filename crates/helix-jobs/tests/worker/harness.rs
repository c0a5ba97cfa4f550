//! What the worker tests share: a scripted job kind whose payload says what its handler does, a
//! probe that records what handlers saw, a worker running in a task of its own, and waits bounded
//! by [`PATIENCE`] so that a broken build fails instead of hanging.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use helix_jobs::backoff::Backoff;
use helix_jobs::worker::{CountersSnapshot, QueueCounters};
use helix_jobs::{
    BackendKind, Claim, EnqueueOptions, Enqueued, FetchRequest, Finish, Job, JobBackend,
    JobContext, JobError, JobFailure, JobId, JobKind, JobState, Jobs, ListFilter, NewJob,
    QueueConfig, QueueStats, Registry, Ticket, Wakeups, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long any wait may take before the test gives up (never a speed requirement).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Clock granularity allowed when a time taken in a handler (this process's clock) is compared
/// with one the backend stored (Redis keeps milliseconds).
pub const SLACK: chrono::Duration = chrono::Duration::milliseconds(5);

/// The backoff of every test queue: 50, 100, 200, then 200 ms (capped), no jitter.
pub const TINY: Backoff = Backoff {
    base: Duration::from_millis(50),
    max: Duration::from_millis(200),
    jitter: 0.0,
};

/// What a [`Script`] handler does: its whole payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "act", rename_all = "snake_case")]
pub enum Act {
    Succeed,
    /// Sleep, then succeed.
    Sleep {
        ms: u64,
    },
    /// Wait until the probe's gate opens, then sleep `ms`, then succeed.
    Gated {
        ms: u64,
    },
    /// `JobFailure::Retry("flaky on attempt N")`.
    Flaky,
    /// `JobFailure::RetryAfter("wait on attempt N", ms)` on every attempt.
    Wait {
        ms: u64,
    },
    /// `JobFailure::Permanent(reason)`.
    Refuse {
        reason: String,
    },
    /// `panic!("boom on attempt N")` (a `String` payload).
    Panic,
    /// `panic!("static boom")` (a `&'static str` payload).
    PanicStatic,
    /// Never return.
    Hang,
}

/// One handler start, as the handler saw it.
#[derive(Debug, Clone)]
pub struct Start {
    pub id: JobId,
    pub queue: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// This process's clock when the handler began.
    pub at: DateTime<Utc>,
}

/// How one handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    pub id: JobId,
    pub attempt: u32,
    /// False: its future was dropped (timeout, shutdown, lost lease) or it panicked.
    pub returned: bool,
    /// Whether `JobContext::cancel` had fired by then.
    pub cancel_seen: bool,
}

/// What the handlers of one registry saw; the gate holds [`Act::Gated`] handlers until opened.
#[derive(Debug, Default)]
pub struct Probe {
    starts: Mutex<Vec<Start>>,
    ends: Mutex<Vec<End>>,
    now: AtomicUsize,
    peak: AtomicUsize,
    gate: CancellationToken,
}

impl Probe {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A probe whose gate is already open.
    pub fn open() -> Arc<Self> {
        let probe = Self::new();
        probe.open_gate();
        probe
    }

    pub fn open_gate(&self) {
        self.gate.cancel();
    }

    pub fn starts(&self) -> Vec<Start> {
        self.starts.lock().unwrap().clone()
    }

    pub fn starts_of(&self, id: JobId) -> Vec<Start> {
        self.starts().into_iter().filter(|s| s.id == id).collect()
    }

    pub fn ends(&self) -> Vec<End> {
        self.ends.lock().unwrap().clone()
    }

    pub fn end_of(&self, id: JobId) -> Option<End> {
        self.ends().into_iter().find(|e| e.id == id)
    }

    pub fn ends_of(&self, id: JobId) -> Vec<End> {
        self.ends().into_iter().filter(|e| e.id == id).collect()
    }

    /// Handlers running right now.
    pub fn running(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    /// The most handlers that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    fn enter(self: &Arc<Self>, ctx: &JobContext) -> Guard {
        self.starts.lock().unwrap().push(Start {
            id: ctx.id,
            queue: ctx.queue.clone(),
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts,
            at: Utc::now(),
        });
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Guard {
            probe: self.clone(),
            id: ctx.id,
            attempt: ctx.attempt,
            cancel: ctx.cancel.clone(),
            returned: false,
        }
    }
}

/// Records a handler's end when its future completes, panics or is dropped.
struct Guard {
    probe: Arc<Probe>,
    id: JobId,
    attempt: u32,
    cancel: CancellationToken,
    returned: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.probe.now.fetch_sub(1, Ordering::SeqCst);
        let end = End {
            id: self.id,
            attempt: self.attempt,
            returned: self.returned,
            cancel_seen: self.cancel.is_cancelled(),
        };
        self.probe
            .ends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(end);
    }
}

/// The test job kind: does what its payload says and tells its probe.
pub struct Script(pub Arc<Probe>);

impl JobKind for Script {
    const NAME: &'static str = "script";
    type Payload = Act;

    async fn run(&self, act: Act, ctx: JobContext) -> Result<(), JobFailure> {
        let mut guard = self.0.enter(&ctx);
        let result = match act {
            Act::Succeed => Ok(()),
            Act::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Act::Gated { ms } => {
                self.0.gate.cancelled().await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Act::Flaky => Err(JobFailure::retry(format!(
                "flaky on attempt {}",
                ctx.attempt
            ))),
            Act::Wait { ms } => Err(JobFailure::retry_after(
                format!("wait on attempt {}", ctx.attempt),
                Duration::from_millis(ms),
            )),
            Act::Refuse { reason } => Err(JobFailure::permanent(reason)),
            Act::Panic => panic!("boom on attempt {}", ctx.attempt),
            Act::PanicStatic => panic!("static boom"),
            Act::Hang => std::future::pending().await,
        };
        guard.returned = true;
        result
    }
}

/// The built-in kinds plus a [`Script`] reporting to `probe`.
pub fn registry(probe: &Arc<Probe>) -> Arc<Registry> {
    let mut registry = Registry::new();
    registry.register(Script(probe.clone()));
    Arc::new(registry)
}

/// A client enqueuing on `backend` with the kinds of `probe`'s registry.
pub fn client(backend: &Arc<dyn JobBackend>, probe: &Arc<Probe>) -> Jobs {
    Jobs::new(backend.clone(), registry(probe))
}

/// A test queue: 4 at once, 3 attempts, the [`TINY`] backoff, the default 30 s lease.
pub fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        concurrency: 4,
        max_attempts: 3,
        backoff: TINY,
        ..QueueConfig::new(name)
    }
}

/// A worker polling every 50 ms with a 10 s grace.
pub fn options(worker_id: &str) -> WorkerOptions {
    WorkerOptions {
        worker_id: worker_id.into(),
        poll: Duration::from_millis(50),
        grace: Duration::from_secs(10),
        ..WorkerOptions::default()
    }
}

/// Enqueue one job of [`Script`] and return its id.
pub async fn put(client: &Jobs, act: Act, options: EnqueueOptions) -> JobId {
    let out = client
        .enqueue::<Script>(&act, options)
        .await
        .expect("enqueue");
    assert!(out.inserted);
    out.id
}

/// Options naming a queue.
pub fn on(queue: &str) -> EnqueueOptions {
    EnqueueOptions {
        queue: Some(queue.into()),
        ..EnqueueOptions::default()
    }
}

/// A [`Worker::run`] in a task of its own.
pub struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    counters: BTreeMap<String, Arc<QueueCounters>>,
}

/// Start a worker on `queues` of `backend`, running the kinds of `probe`'s registry.
pub fn start(
    backend: &Arc<dyn JobBackend>,
    probe: &Arc<Probe>,
    queues: Vec<QueueConfig>,
    options: WorkerOptions,
) -> Running {
    let worker = Worker::new(backend.clone(), registry(probe), queues, options);
    let counters = worker.counters().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    Running {
        shutdown,
        task,
        counters,
    }
}

impl Running {
    pub fn counters(&self, queue: &str) -> CountersSnapshot {
        self.counters[queue].snapshot()
    }

    pub fn queues(&self) -> Vec<String> {
        self.counters.keys().cloned().collect()
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Ask for a graceful shutdown without waiting for it.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }

    /// Wait until `run` returns; its queues' final counters.
    pub async fn join(self) -> BTreeMap<String, CountersSnapshot> {
        match tokio::time::timeout(PATIENCE, self.task).await {
            Err(_) => panic!("the worker did not return within {PATIENCE:?} of its shutdown"),
            Ok(Err(e)) => panic!("the worker task failed: {e}"),
            Ok(Ok(())) => {}
        }
        self.counters
            .iter()
            .map(|(queue, c)| (queue.clone(), c.snapshot()))
            .collect()
    }

    /// Shut down gracefully and wait; the final counters.
    pub async fn stop(self) -> BTreeMap<String, CountersSnapshot> {
        self.shut_down();
        self.join().await
    }

    /// Abort the task running `run` (no graceful path), as a crash would end it.
    pub async fn kill(self) {
        self.task.abort();
        let ended = tokio::time::timeout(PATIENCE, self.task).await;
        assert!(
            matches!(&ended, Ok(Err(e)) if e.is_cancelled()),
            "the worker task was aborted: {ended:?}"
        );
    }
}

/// Wait until `cond` holds.
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until job `id` satisfies `cond`; the job then.
pub async fn wait_job(
    jobs: &dyn JobBackend,
    id: JobId,
    what: &str,
    cond: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job = jobs.get(id).await.expect("get").expect("the job exists");
        if cond(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for job {id} to be {what}; it is {job:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until job `id` is in `state`; the job then.
pub async fn wait_state(jobs: &dyn JobBackend, id: JobId, state: JobState) -> Job {
    wait_job(jobs, id, state.as_str(), |job| job.state == state).await
}

/// Read job `id`.
pub async fn get(jobs: &dyn JobBackend, id: JobId) -> Job {
    jobs.get(id).await.expect("get").expect("the job exists")
}

/// The stats of one queue (all zero when it never held a job).
pub async fn stats_of(jobs: &dyn JobBackend, queue: &str) -> QueueStats {
    jobs.stats()
        .await
        .expect("stats")
        .into_iter()
        .find(|s| s.queue == queue)
        .unwrap_or_else(|| QueueStats {
            queue: queue.into(),
            ..QueueStats::default()
        })
}

/// A backend whose lease extensions can be made to fail, as they would while the network to the
/// backend is down; every other call goes through.
pub struct Unreliable {
    inner: Arc<dyn JobBackend>,
    extend_down: AtomicBool,
}

impl Unreliable {
    pub fn new(inner: Arc<dyn JobBackend>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            extend_down: AtomicBool::new(false),
        })
    }

    /// Make `extend` fail (true) or work again (false).
    pub fn extends_fail(&self, down: bool) {
        self.extend_down.store(down, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl JobBackend for Unreliable {
    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn ping(&self) -> Result<(), JobError> {
        self.inner.ping().await
    }
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        self.inner.enqueue(jobs).await
    }
    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError> {
        self.inner.fetch(request).await
    }
    async fn extend(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<bool>, JobError> {
        if self.extend_down.load(Ordering::SeqCst) {
            return Err(JobError::Unavailable {
                backend: self.describe(),
                reason: "connection reset (test)".into(),
            });
        }
        self.inner.extend(tickets, lease).await
    }
    async fn finish(&self, results: &[Finish]) -> Result<Vec<bool>, JobError> {
        self.inner.finish(results).await
    }
    async fn release(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError> {
        self.inner.release(tickets).await
    }
    async fn get(&self, id: JobId) -> Result<Option<Job>, JobError> {
        self.inner.get(id).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        self.inner.list(filter).await
    }
    async fn cancel(&self, id: JobId) -> Result<Job, JobError> {
        self.inner.cancel(id).await
    }
    async fn retry(&self, id: JobId) -> Result<Job, JobError> {
        self.inner.retry(id).await
    }
    async fn stats(&self) -> Result<Vec<QueueStats>, JobError> {
        self.inner.stats().await
    }
    async fn prune(&self, completed: Duration, failed: Duration) -> Result<u64, JobError> {
        self.inner.prune(completed, failed).await
    }
    async fn wakeups(&self) -> Result<Wakeups, JobError> {
        self.inner.wakeups().await
    }
}
