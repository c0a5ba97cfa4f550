//! The contract every queue backend keeps ([`JobBackend`]), written once and tested once
//! (`tests/conformance.rs`) on Redis, PostgreSQL and SQLite.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::JobError;
use crate::model::{
    Claim, Enqueued, FetchRequest, Finish, Job, JobId, ListFilter, NewJob, QueueStats, Ticket,
};

/// Which engine holds the jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Redis,
    Postgres,
    Sqlite,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Postgres => "postgres",
            BackendKind::Sqlite => "sqlite",
        }
    }
}

/// One job state machine, kept by one engine. Times (`delay`, leases, `run_at`) are measured on
/// the backend's clock: Redis's `TIME`, PostgreSQL's `clock_timestamp()`, the process clock for
/// SQLite; so workers' clocks do not matter where several machines share a backend.
///
/// Every method is one atomic step on the backend (a Lua script, a statement or one transaction),
/// so a crash between two calls never leaves a job half moved.
///
/// Rules every engine keeps (the conformance suite checks each):
/// - Enqueue with zero delay: `available`, `run_at` = now; otherwise `scheduled`, `run_at` =
///   now + delay. The payload is stored verbatim.
/// - Reads (`get`, `list`, `stats`) report a scheduled or retryable job whose `run_at` has come as
///   `available`, so what operators see does not depend on whether a worker has fetched lately.
///   A running job whose lease ended stays `running` until a fetch of its queue reclaims it.
/// - A reclaimed or released job keeps its `run_at`, and so its place in line: the jobs a dead
///   or stopping worker held run next, not behind everything enqueued since.
/// - Fetch order within a queue: highest priority first; within a priority, oldest `run_at`
///   first (the time the job became or becomes available); then oldest id.
/// - A token is accepted (`extend`, `finish`, `release`) only while the job is `running` under
///   that very token.
/// - `finish` with `Retry`: `retryable`, `run_at` = now + delay, lease cleared, error appended.
///   `Fail`: `failed`, `finished_at` = now, error appended, the queue's `failed_total` grows.
///   `Completed`: `completed`, `finished_at` = now, `completed_total` grows. Appended errors are
///   `{attempt, at: now, error}`; a job keeps its last [`crate::model::MAX_ATTEMPTS_LIMIT`].
/// - Unique keys are global (not per queue) and held for `window` from the enqueue that took
///   them, whatever becomes of that job; a later enqueue takes the key over.
/// - `worker` and `lease_until` are set only while `running`.
#[async_trait]
pub trait JobBackend: Send + Sync + 'static {
    fn kind(&self) -> BackendKind;

    /// A password-free description (`redis 127.0.0.1:6379/0`, `postgres host:5432/db`).
    fn describe(&self) -> String;

    /// One cheap round trip; `Err` means the backend is unreachable right now.
    async fn ping(&self) -> Result<(), JobError>;

    /// Add jobs, each independently, in one round trip. A job whose unique key is held by a job
    /// enqueued less than its window ago is not added: its entry names the holder with
    /// `inserted: false` (also for a repeat within the same call). Results are in input order.
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError>;

    /// Lease up to `max` jobs of one queue, highest priority first, then oldest `run_at`, then
    /// oldest id. First, on the same step: scheduled and retryable jobs whose `run_at` has come
    /// become available, and running jobs whose lease ended are reclaimed (available again
    /// at once, or failed with the error "lease expired" when that was their last attempt;
    /// either way the queue's lease-expiry count grows). Each fetched job gets a new token and
    /// its attempt count grows by one.
    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError>;

    /// Extend leases to `lease` from now. Entry i is false when ticket i no longer holds its job.
    async fn extend(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<bool>, JobError>;

    /// Record how attempts ended, in one round trip: completed, retryable at now + delay (with the
    /// error appended to the job's errors), or failed (error appended). Entry i is false, and
    /// nothing changes for it, when ticket i no longer holds its job.
    async fn finish(&self, results: &[Finish]) -> Result<Vec<bool>, JobError>;

    /// Give leased jobs back, available now, without using up an attempt (graceful shutdown).
    /// Entry i is false when ticket i no longer holds its job.
    async fn release(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError>;

    async fn get(&self, id: JobId) -> Result<Option<Job>, JobError>;

    /// Jobs matching the filter, newest id first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError>;

    /// Cancel a job that has not reached a terminal state; a running one's lease is revoked (its
    /// worker's finish is then refused). [`JobError::Conflict`] for a terminal state,
    /// [`JobError::NotFound`] for an unknown id.
    async fn cancel(&self, id: JobId) -> Result<Job, JobError>;

    /// Make a failed, cancelled, retryable or scheduled job available now, with its attempt count
    /// reset to zero (its past errors stay). [`JobError::Conflict`] for available, running or
    /// completed jobs.
    async fn retry(&self, id: JobId) -> Result<Job, JobError>;

    /// Every queue that has ever held a job, by name.
    async fn stats(&self) -> Result<Vec<QueueStats>, JobError>;

    /// Delete completed and cancelled jobs finished more than `completed` ago, and failed ones
    /// finished more than `failed` ago; returns how many were deleted. Totals are kept.
    async fn prune(&self, completed: Duration, failed: Duration) -> Result<u64, JobError>;

    /// A hint that jobs may have become available: enqueues on this backend (from any process
    /// where the engine can tell others: Redis pub/sub, PostgreSQL `NOTIFY`; this process only
    /// on SQLite) bump the receiver. Only a hint: workers still poll.
    async fn wakeups(&self) -> Result<Wakeups, JobError>;
}

/// Receives [`JobBackend::wakeups`] hints; the value only counts them (`changed()` is the signal).
pub struct Wakeups {
    pub rx: tokio::sync::watch::Receiver<u64>,
    /// Keeps the backend's listener alive while someone holds the receiver.
    pub guard: Option<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups").finish_non_exhaustive()
    }
}
