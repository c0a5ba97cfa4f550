//! Errors of the schedule layer: what the CLI and the HTTP API turn into an exit code or a
//! status (`Invalid` → 400 / exit 2, `NotFound` → 404, `Duplicate` → 409, the rest → 5xx / exit 1).
//! None carries a password or a payload.

use crate::JobError;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The caller's input is wrong; the message names what and why
    /// (`invalid cron expression "…": …`, `unknown time zone "…"`).
    #[error("{0}")]
    Invalid(String),

    #[error("no schedule named {0:?}")]
    NotFound(String),

    #[error("a schedule named {0:?} already exists")]
    Duplicate(String),

    /// The schedule table could not be read or written (the database is down, or a row is
    /// corrupt).
    #[error("schedule store error: {0}")]
    Store(String),

    /// The job backend refused or failed an enqueue.
    #[error(transparent)]
    Jobs(#[from] JobError),
}

impl ScheduleError {
    pub fn invalid(reason: impl Into<String>) -> Self {
        ScheduleError::Invalid(reason.into())
    }

    /// A driver error, with the statement's purpose for context. sqlx messages carry no URL, so
    /// none can leak a password.
    pub(crate) fn store(what: &str, err: sqlx::Error) -> Self {
        ScheduleError::Store(format!("{what}: {err}"))
    }
}
