//! Between Rust values and PostgreSQL rows and parameters: decoding jobs, claims and queue stats,
//! turning durations into `interval` parameters, and mapping driver errors onto [`JobError`].

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use crate::error::JobError;
use crate::model::{AttemptError, Claim, Job, JobId, JobState, QueueStats, MAX_ERROR_CHARS};

/// Durations longer than this are stored as this: `now + interval` must stay inside
/// PostgreSQL's timestamp range (and `Duration::MAX` means "forever" to callers anyway).
const LONGEST: Duration = Duration::from_secs(1_000 * 366 * 24 * 3600);

/// A duration as an `interval` parameter: whole microseconds (sqlx refuses finer ones), at most
/// [`LONGEST`].
pub(super) fn interval(d: Duration) -> Duration {
    let d = d.min(LONGEST);
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// An error text cut to [`MAX_ERROR_CHARS`] characters (at a character boundary).
pub(super) fn error_text(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => error[..cut].to_string(),
        None => error.to_string(),
    }
}

/// A driver error as the caller sees it: the database out of reach (refused, dropped, pool
/// exhausted or closed, server shutting down) is [`JobError::Unavailable`], anything else
/// [`JobError::Backend`]. sqlx's messages name neither the URL nor the password.
pub(super) fn error(err: sqlx::Error, backend: &str) -> JobError {
    if unreachable(&err) {
        JobError::Unavailable {
            backend: backend.to_string(),
            reason: err.to_string(),
        }
    } else {
        JobError::Backend(err.to_string())
    }
}

fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01-03: the server is shutting down or starting
        // up; 53300: too many connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

fn count(row: &PgRow, column: &str) -> Result<u32, sqlx::Error> {
    let value: i32 = row.try_get(column)?;
    u32::try_from(value).map_err(|e| decode(column, e))
}

fn optional_count(row: &PgRow, column: &str) -> Result<Option<u32>, sqlx::Error> {
    let value: Option<i32> = row.try_get(column)?;
    value
        .map(|v| u32::try_from(v).map_err(|e| decode(column, e)))
        .transpose()
}

fn optional_millis(row: &PgRow, column: &str) -> Result<Option<u64>, sqlx::Error> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| u64::try_from(v).map_err(|e| decode(column, e)))
        .transpose()
}

fn total(row: &PgRow, column: &str) -> Result<u64, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|e| decode(column, e))
}

fn decode(column: &str, source: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(source),
    }
}

/// A row of `sql::job_columns`.
pub(super) fn job(row: &PgRow) -> Result<Job, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let state: JobState = state
        .parse()
        .map_err(|e: String| decode("state", Invalid(e)))?;
    Ok(Job {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        state,
        priority: row.try_get("priority")?,
        attempts: count(row, "attempts")?,
        max_attempts: optional_count(row, "max_attempts")?,
        timeout_ms: optional_millis(row, "timeout_ms")?,
        unique_key: row.try_get("unique_key")?,
        run_at: row.try_get("run_at")?,
        lease_until: row.try_get("lease_until")?,
        worker: row.try_get("worker")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
        errors: row.try_get::<Json<Vec<AttemptError>>, _>("errors")?.0,
    })
}

/// A row of `sql::fetch`.
pub(super) fn claim(row: &PgRow) -> Result<Claim, sqlx::Error> {
    Ok(Claim {
        id: JobId(row.try_get("id")?),
        kind: row.try_get("kind")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        attempt: count(row, "attempts")?,
        max_attempts: optional_count(row, "max_attempts")?,
        timeout: optional_millis(row, "timeout_ms")?.map(Duration::from_millis),
        token: total(row, "token")?,
    })
}

/// A row of `sql::stats`.
pub(super) fn queue_stats(row: &PgRow) -> Result<QueueStats, sqlx::Error> {
    Ok(QueueStats {
        queue: row.try_get("queue")?,
        scheduled: total(row, "scheduled")?,
        available: total(row, "available")?,
        running: total(row, "running")?,
        retryable: total(row, "retryable")?,
        completed: total(row, "completed")?,
        failed: total(row, "failed")?,
        cancelled: total(row, "cancelled")?,
        oldest_available_ms: optional_millis(row, "oldest_available_ms")?,
        completed_total: total(row, "completed_total")?,
        failed_total: total(row, "failed_total")?,
        lease_expiries_total: total(row, "lease_expiries_total")?,
    })
}

/// A value the database holds that this crate does not know (a state written by a newer build).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Invalid(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_cuts_at_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        let cut = error_text(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert_eq!(error_text("short"), "short");
    }

    #[test]
    fn intervals_are_whole_microseconds_and_bounded() {
        assert_eq!(
            interval(Duration::from_nanos(1_500)),
            Duration::from_micros(1)
        );
        assert_eq!(interval(Duration::MAX), LONGEST);
    }
}
