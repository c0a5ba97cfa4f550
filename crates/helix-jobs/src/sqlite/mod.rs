//! The SQLite job backend ([`SqliteJobs`]), the embedded default: the state machine of
//! [`crate::model`] on the tables of the store's migration `0007_jobs.sql` (`helix_jobs`,
//! `helix_job_queues`, `helix_job_unique`), in the store's own file.
//!
//! Owns the SQLite dialect of every job step. Submodules: `enqueue` (adding jobs and unique keys),
//! `lease` (fetch, extend, finish, release: what workers call), `read` (get, list, stats and the
//! decoding of rows), `admin` (cancel, retry, prune) and `wake` (the in-process wake-up registry).
//!
//! How it keeps the contract of [`JobBackend`]:
//! - Every write is one `BEGIN IMMEDIATE` transaction on the store's single-connection write pool,
//!   whatever the batch size (see [`SqliteJobs::begin`]); reads use the read pool, and WAL lets
//!   them run while a write is in progress.
//! - A batch goes to SQLite as one JSON array bound to one statement (`json_each`), not one
//!   statement per job: each statement is a round trip to sqlx's connection thread (~20 µs), which
//!   costs more than SQLite's work for a small job. The statement text never changes with the
//!   batch size, so sqlx's per-connection cache prepares each one once. For the same reason what a
//!   step reads comes back as one row holding a JSON array, never one row per job (see `lease`).
//! - Times are integer milliseconds from this process's clock (UTC). Several processes sharing a
//!   file therefore share its clock only as far as their hosts' clocks agree; in practice they run
//!   on one host, since SQLite needs a local file.
//! - Wake-ups reach only the `SqliteJobs` of this process (see `wake`); workers in other processes
//!   find new jobs by polling.

mod admin;
mod enqueue;
mod lease;
mod read;
#[cfg(test)]
mod tests;
mod wake;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{watch, OnceCell};

use crate::backend::{BackendKind, JobBackend, Wakeups};
use crate::error::JobError;
use crate::model::{
    Claim, Enqueued, FetchRequest, Finish, Job, JobId, ListFilter, NewJob, QueueStats, Ticket,
};

/// The job queue in a SQLite file, on the pools of a `helix_store` SQLite store.
pub struct SqliteJobs {
    read: SqlitePool,
    /// The store's single-connection write pool. Why one connection: SQLite has one write lock,
    /// and writers of one process waiting in its busy handler poll with growing sleeps; waiting
    /// for this pool's connection is a fair async queue instead.
    write: SqlitePool,
    describe: String,
    /// This database's entry of the process-wide wake-up registry, resolved on first use (it
    /// needs a query to learn the file's real path).
    wake: OnceCell<watch::Sender<u64>>,
    /// Queues known to have their `helix_job_queues` row. Rows are never deleted, so once seen a
    /// queue needs no insert on later enqueues (one statement less per call). Why a std mutex:
    /// it is held only to look up or add names, never across an await.
    known_queues: Mutex<HashSet<String>>,
}

impl SqliteJobs {
    /// The backend on a store's pools; `describe` is the store's (password-free) description.
    pub fn new(read: SqlitePool, write: SqlitePool, describe: String) -> Self {
        Self {
            read,
            write,
            describe,
            wake: OnceCell::new(),
            known_queues: Mutex::new(HashSet::new()),
        }
    }

    /// Maps sqlx errors of this database to [`JobError`].
    fn err(&self) -> impl Fn(sqlx::Error) -> JobError + '_ {
        move |e| error(e, &self.describe)
    }

    /// A write transaction. Why IMMEDIATE: it takes SQLite's write lock at `BEGIN` (waiting up to
    /// the store's busy timeout for another process), so what the step reads (a token, a unique
    /// key's holder) cannot change before it commits; a deferred transaction would instead fail
    /// with SQLITE_BUSY at its first write whenever another connection committed since its read.
    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, JobError> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err())
    }
}

/// Unavailable when the file cannot be opened or reached (closed or exhausted pool, I/O, a lock
/// held past the busy timeout); anything else is a backend error.
fn error(err: sqlx::Error, describe: &str) -> JobError {
    let unavailable = match &err {
        sqlx::Error::PoolClosed
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN (primary codes).
        sqlx::Error::Database(e) => e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 14)),
        _ => false,
    };
    if unavailable {
        JobError::Unavailable {
            backend: describe.to_string(),
            reason: err.to_string(),
        }
    } else {
        JobError::Backend(format!("{describe}: {err}"))
    }
}

/// The latest time stored (9999-12-31T23:59:59.999Z), so that every stored time converts back to
/// a `DateTime` however long a delay or lease is asked for.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Now, from the process clock, in milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `now + span`, rounded up to the millisecond (so a job is never due before its delay) and
/// capped at [`MAX_TIME_MS`].
fn after(now: i64, span: Duration) -> i64 {
    let ms = span.as_nanos().div_ceil(1_000_000);
    now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
        .min(MAX_TIME_MS)
}

/// A stored time read back.
fn time(ms: i64) -> Result<DateTime<Utc>, JobError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| JobError::Backend(format!("stored time out of range: {ms}")))
}

/// An id as stored: hyphenated lowercase text, which sorts as the UUIDv7 does.
fn id_text(id: JobId) -> String {
    id.0.hyphenated().to_string()
}

fn parse_id(text: &str) -> Result<JobId, JobError> {
    text.parse()
        .map_err(|e| JobError::Backend(format!("stored job id {text:?} is not a UUID: {e}")))
}

/// A batch as the JSON array the `json_each` statements read.
fn json_batch<T: serde::Serialize>(rows: &[T]) -> Result<String, JobError> {
    serde_json::to_string(rows).map_err(|e| JobError::Backend(format!("encoding a batch: {e}")))
}

#[async_trait]
impl JobBackend for SqliteJobs {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn ping(&self) -> Result<(), JobError> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        self.enqueue_batch(jobs).await
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError> {
        self.fetch_batch(request).await
    }

    async fn extend(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<bool>, JobError> {
        self.extend_batch(tickets, lease).await
    }

    async fn finish(&self, results: &[Finish]) -> Result<Vec<bool>, JobError> {
        self.finish_batch(results).await
    }

    async fn release(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError> {
        self.release_batch(tickets).await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, JobError> {
        self.get_job(id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        self.list_jobs(filter).await
    }

    async fn cancel(&self, id: JobId) -> Result<Job, JobError> {
        self.cancel_job(id).await
    }

    async fn retry(&self, id: JobId) -> Result<Job, JobError> {
        self.retry_job(id).await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, JobError> {
        self.queue_stats().await
    }

    async fn prune(&self, completed: Duration, failed: Duration) -> Result<u64, JobError> {
        self.prune_finished(completed, failed).await
    }

    async fn wakeups(&self) -> Result<Wakeups, JobError> {
        Ok(Wakeups {
            rx: self.waker().await?.subscribe(),
            guard: None,
        })
    }
}
