//! The plain data of the job state machine: what is enqueued, what a worker holds while it runs a
//! job, how an attempt ends, and what operators read back.
//!
//! ```text
//! enqueue ─► scheduled ──(run_at passes)──► available ──fetch──► running ──► completed
//!            (run_at in the future)            ▲   ▲             (leased)  ├─► retryable ─(run_at)─┐
//!                                              │   └──── release / lease expiry ◄┘ ├─► failed (dead letter)
//!                                              └───────────────────────────────────┴──────────────────────┘
//! cancel: any state that is not completed, failed or cancelled → cancelled
//! retry:  failed, cancelled, retryable or scheduled → available now
//! ```
//!
//! Every fetch gives the job a new fencing `token`; finishing, extending or releasing a lease names
//! the token, and a backend refuses it when the job has since been leased again, cancelled or
//! reclaimed, so a worker that was presumed dead cannot overwrite what another did.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest payload a job may carry (JSON text). Jobs carry references, not documents.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The highest `max_attempts`; also bounds the per-attempt error list a job keeps.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// The longest error text kept per attempt (longer ones are cut at a character boundary).
pub const MAX_ERROR_CHARS: usize = 2_000;

/// Priorities run from -100 (last) to 100 (first); 0 is the default.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -100..=100;

/// A job's id: a UUIDv7, so ids sort by creation time (list cursors and index locality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready to be fetched now.
    Available,
    /// Leased by a worker that is running it.
    Running,
    /// An attempt failed; it runs again at `run_at`.
    Retryable,
    /// Its handler returned success (terminal).
    Completed,
    /// Out of attempts, or failed for good (terminal: the dead letter).
    Failed,
    /// Cancelled by an operator before it finished (terminal).
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: nothing moves it any more except an operator's retry.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job state {s:?}; expected one of scheduled, available, running, \
                     retryable, completed, failed, cancelled"
                )
            })
    }
}

/// A job to add. Built by [`crate::Jobs`] (which checks the kind and the payload); a backend
/// trusts its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: JobId,
    pub kind: String,
    pub queue: String,
    /// JSON text.
    pub payload: String,
    /// Higher runs first within a queue; see [`PRIORITY_RANGE`].
    pub priority: i32,
    /// Zero: available now. Otherwise scheduled that long after the backend's clock says now.
    pub delay: Duration,
    /// `None`: the queue's default, which the worker applies.
    pub max_attempts: Option<u32>,
    /// How long one attempt's handler may run before it is cancelled; `None`: the queue's default.
    pub timeout: Option<Duration>,
    pub unique: Option<Unique>,
}

/// An idempotency key: while a job with the same key was enqueued less than `window` ago, another
/// enqueue with that key adds nothing and gets the first job's id back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unique {
    pub key: String,
    pub window: Duration,
}

/// What one enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The new job's id, or the id of the job that already held the unique key.
    pub id: JobId,
    /// False when a unique key matched an earlier job and nothing was added.
    pub inserted: bool,
}

/// What a fetch asks for.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    pub queue: &'a str,
    /// At most this many jobs (a worker asks for as many as it has free slots, never more, so a
    /// job's lease starts when it starts running).
    pub max: u32,
    /// The lease each fetched job gets, from the backend's clock.
    pub lease: Duration,
    /// Who takes them, for operators (`host:pid`).
    pub worker: &'a str,
    /// The queue's default attempts, for jobs without their own: a job whose lease expired on its
    /// last attempt is failed, not offered again.
    pub max_attempts: u32,
}

/// A job a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub id: JobId,
    pub kind: String,
    pub queue: String,
    pub payload: String,
    /// This attempt, from 1.
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    /// The fencing token of this lease.
    pub token: u64,
}

impl Claim {
    pub fn ticket(&self) -> Ticket {
        Ticket {
            id: self.id,
            token: self.token,
        }
    }
}

/// Names one lease: a job and the token it was fetched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub id: JobId,
    pub token: u64,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed,
    /// Run again after `delay` (the retry time is stored, not slept).
    Retry {
        error: String,
        delay: Duration,
    },
    /// Failed for good (out of attempts, or an error retrying cannot mend).
    Fail {
        error: String,
    },
}

/// One finished attempt, as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub ticket: Ticket,
    pub outcome: Outcome,
}

/// The error of one attempt, kept with the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub error: String,
}

/// Everything known about one job, for operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub queue: String,
    /// JSON text.
    pub payload: String,
    pub state: JobState,
    pub priority: i32,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub unique_key: Option<String>,
    /// When it becomes (or became) available.
    pub run_at: DateTime<Utc>,
    /// While running: when its lease ends unless extended.
    pub lease_until: Option<DateTime<Utc>>,
    /// While running: who holds it.
    pub worker: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// One entry per failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
}

/// Which jobs to list: newest first, `limit` at most, strictly older than `before` when given.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub limit: u32,
    pub before: Option<JobId>,
}

/// One queue's counts, as `helix jobs stats` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub scheduled: u64,
    pub available: u64,
    pub running: u64,
    pub retryable: u64,
    /// Completed jobs still kept (pruned after a retention period).
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Age of the oldest job that is available now (how far behind the workers are).
    pub oldest_available_ms: Option<u64>,
    /// Ever, on this backend (not reduced by pruning).
    pub completed_total: u64,
    pub failed_total: u64,
    /// Leases that ran out before their worker finished (a killed or stalled worker).
    pub lease_expiries_total: u64,
}
