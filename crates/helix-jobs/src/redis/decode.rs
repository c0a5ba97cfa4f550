//! Script replies turned into the model's types. Nothing here trusts a reply's shape: a missing
//! or malformed value is a `JobError::Backend`, never a panic.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;
use serde::Deserialize;

use super::record;
use crate::model::{AttemptError, Claim, Job, JobId, JobState, QueueStats};
use crate::JobError;

fn malformed(what: impl std::fmt::Display) -> JobError {
    JobError::Backend(format!(
        "unexpected reply from the Redis job scripts: {what}"
    ))
}

/// The elements of an array reply.
pub(super) fn items(value: Value) -> Result<Vec<Value>, JobError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(malformed(format!(
            "expected an array, got {}",
            kind(&other)
        ))),
    }
}

/// A string reply (numbers too, as their decimal text).
pub(super) fn text(value: Value) -> Result<String, JobError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| malformed("non-UTF-8 text"))
        }
        Value::SimpleString(text) => Ok(text),
        Value::Int(n) => Ok(n.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(malformed(format!("expected text, got {}", kind(&other)))),
    }
}

/// An integer reply, or decimal text holding one.
pub(super) fn int(value: &Value) -> Result<i64, JobError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("expected an integer")),
        other => Err(malformed(format!(
            "expected an integer, got {}",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) => "text",
        Value::Array(_) => "an array",
        Value::ServerError(_) => "an error",
        _ => "another type",
    }
}

fn number<T: TryFrom<i64>>(value: &Value, what: &str) -> Result<T, JobError> {
    T::try_from(int(value)?).map_err(|_| malformed(format!("{what} out of range")))
}

fn time(ms: i64) -> Result<DateTime<Utc>, JobError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| malformed("a time out of range"))
}

/// Milliseconds to a duration (negative ones, which a clock step could give, as zero).
fn age(now_ms: i64, then_ms: i64) -> u64 {
    u64::try_from(now_ms.saturating_sub(then_ms)).unwrap_or(0)
}

/// The fetch reply: 5 values per job (see `lua/fetch.lua`).
pub(super) fn claims(queue: &str, reply: Value) -> Result<Vec<Claim>, JobError> {
    let values = items(reply)?;
    if values.len() % 5 != 0 {
        return Err(malformed("fetch returned a partial job"));
    }
    let mut claims = Vec::with_capacity(values.len() / 5);
    let mut values = values.into_iter();
    while let (Some(id), Some(data), Some(attempt), Some(max_attempts), Some(token)) = (
        values.next(),
        values.next(),
        values.next(),
        values.next(),
        values.next(),
    ) {
        let data = record::unpack_data(text(data)?)?;
        claims.push(Claim {
            id: parse_id(&text(id)?)?,
            kind: data.kind,
            queue: queue.to_owned(),
            payload: data.payload,
            attempt: number(&attempt, "attempt")?,
            // -1: none of its own.
            max_attempts: u32::try_from(int(&max_attempts)?).ok(),
            timeout: data.timeout_ms.map(Duration::from_millis),
            token: number(&token, "token")?,
        });
    }
    Ok(claims)
}

/// A reply of 1 or 0 per ticket.
pub(super) fn flags(reply: Value, expected: usize) -> Result<Vec<bool>, JobError> {
    let flags = items(reply)?
        .iter()
        .map(|v| int(v).map(|n| n == 1))
        .collect::<Result<Vec<_>, _>>()?;
    if flags.len() != expected {
        return Err(malformed("one answer per ticket expected"));
    }
    Ok(flags)
}

pub(super) fn parse_id(text: &str) -> Result<JobId, JobError> {
    text.parse()
        .map_err(|_| malformed(format!("{text:?} is not a job id")))
}

/// An error entry as the scripts write it: `at` in milliseconds.
#[derive(Deserialize)]
struct StoredError {
    attempt: u32,
    at: i64,
    error: String,
}

/// A job as operators see it at `now_ms`, from its record, data and errors (as the get, list,
/// cancel and retry scripts return them): a scheduled or retryable job whose time has come
/// reads as available. `None` when there is no record.
pub(super) fn job(
    id: JobId,
    now_ms: i64,
    [record, data, errors]: [Value; 3],
) -> Result<Option<Job>, JobError> {
    let record = match record {
        Value::BulkString(bytes) => record::unpack_record(&bytes)?,
        Value::Nil => return Ok(None),
        other => return Err(malformed(format!("a job record as {}", kind(&other)))),
    };
    let data = record::unpack_data(text(data)?)?;
    let mut state = record.state;
    if matches!(state, JobState::Scheduled | JobState::Retryable) && record.run_at <= now_ms {
        state = JobState::Available;
    }
    let errors = match text(errors)? {
        text if text.is_empty() => Vec::new(),
        text => serde_json::from_str::<Vec<StoredError>>(&text)
            .map_err(|e| malformed(format!("job errors: {e}")))?
            .into_iter()
            .map(|e| {
                Ok(AttemptError {
                    attempt: e.attempt,
                    at: time(e.at)?,
                    error: e.error,
                })
            })
            .collect::<Result<_, JobError>>()?,
    };
    // The scripts leave the last lease behind when a job moves on (one write less per step); it
    // means something only while the job runs.
    let running = state == JobState::Running;
    let lease_until = record
        .lease_until
        .filter(|_| running)
        .map(time)
        .transpose()?;
    let worker = Some(record.worker).filter(|w| running && !w.is_empty());
    Ok(Some(Job {
        id,
        kind: data.kind,
        queue: record.queue,
        payload: data.payload,
        state,
        priority: record.priority,
        attempts: record.attempts,
        max_attempts: record.max_attempts,
        timeout_ms: data.timeout_ms,
        unique_key: data.unique_key,
        run_at: time(record.run_at)?,
        lease_until,
        worker,
        created_at: time(record.created_at)?,
        updated_at: time(record.updated_at)?,
        finished_at: record.finished_at.map(time).transpose()?,
        errors,
    }))
}

/// The three values of a job in a script's reply, as [`job`] takes them.
pub(super) fn job_values(values: &mut impl Iterator<Item = Value>) -> [Value; 3] {
    std::array::from_fn(|_| values.next().unwrap_or(Value::Nil))
}

/// One queue's row of the stats reply (see `lua/stats.lua`).
pub(super) fn queue_stats(row: Value, now_ms: i64) -> Result<QueueStats, JobError> {
    let row = items(row)?;
    let [queue, scheduled, available, running, retryable, completed, failed, cancelled, oldest, completed_total, failed_total, lease_expiries_total] =
        <[Value; 12]>::try_from(row).map_err(|_| malformed("a stats row of 12 values expected"))?;
    let count = |v: &Value| number::<u64>(v, "a count");
    let oldest = int(&oldest)?;
    Ok(QueueStats {
        queue: text(queue)?,
        scheduled: count(&scheduled)?,
        available: count(&available)?,
        running: count(&running)?,
        retryable: count(&retryable)?,
        completed: count(&completed)?,
        failed: count(&failed)?,
        cancelled: count(&cancelled)?,
        oldest_available_ms: (oldest >= 0).then(|| age(now_ms, oldest)),
        completed_total: count(&completed_total)?,
        failed_total: count(&failed_total)?,
        lease_expiries_total: count(&lease_expiries_total)?,
    })
}
