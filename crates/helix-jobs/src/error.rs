//! Errors of the job layer. None carries a password or a payload.

use crate::model::{JobId, JobState};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The queue backend cannot be reached right now (the caller may retry later).
    #[error("job queue unavailable ({backend}): {reason}")]
    Unavailable { backend: String, reason: String },

    #[error("no job {0}")]
    NotFound(JobId),

    /// The operation does not apply to a job in this state (retry a running job, cancel a
    /// completed one).
    #[error("job {id} is {state}: cannot {action} it")]
    Conflict {
        id: JobId,
        state: JobState,
        action: &'static str,
    },

    /// A unique key matched a job enqueued within its window, and the caller asked to reject.
    #[error("a job with unique key {key:?} already exists: {existing}")]
    Duplicate { key: String, existing: JobId },

    /// No handler is registered under this kind.
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),

    /// The payload does not fit the kind, or a field is out of range.
    #[error("invalid job: {0}")]
    Invalid(String),

    /// The backend failed in a way the caller cannot mend by retrying.
    #[error("job backend error: {0}")]
    Backend(String),
}

impl JobError {
    pub fn invalid(reason: impl Into<String>) -> Self {
        JobError::Invalid(reason.into())
    }
}
