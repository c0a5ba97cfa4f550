//! What operators read on SQLite (get, list, stats), and the decoding of a job row into a
//! [`Job`]. Reads use the read pool and never write: a scheduled or retryable job whose `run_at`
//! has come is reported as available here, whether or not a fetch has promoted it yet.

use std::collections::BTreeMap;

use serde::Deserialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{id_text, now_ms, parse_id, time, SqliteJobs};
use crate::error::JobError;
use crate::model::{AttemptError, Job, JobId, JobState, ListFilter, QueueStats};

/// The columns [`job`] decodes, in its order.
pub(super) const JOB_COLUMNS: &str = "id, queue, state, priority, run_at, attempts, max_attempts, \
     timeout_ms, lease_until, worker, created_at, updated_at, finished_at, unique_key, kind, \
     payload, errors";

static GET: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM helix_jobs WHERE id = ?1"));

/// Newest first; every filter optional: queue ?1, before ?2, reported state ?3 (now is ?4).
static LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM helix_jobs \
         WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR id < ?2) \
           AND (?3 IS NULL OR ?3 = CASE WHEN state IN ('scheduled', 'retryable') AND run_at <= ?4 \
                                        THEN 'available' ELSE state END) \
         ORDER BY id DESC LIMIT ?5"
    )
});

/// Per queue and reported state: how many, and the oldest `run_at` (for the available ones).
/// One branch per partial index, each spelling that index's `WHERE` so SQLite can use it.
const COUNTS: &str = "\
SELECT queue, 'available', count(*), min(run_at) FROM helix_jobs \
    WHERE state = 'available' GROUP BY queue \
UNION ALL \
SELECT queue, CASE WHEN run_at <= ?1 THEN 'available' ELSE state END, count(*), min(run_at) \
    FROM helix_jobs WHERE state IN ('scheduled', 'retryable') GROUP BY queue, state, run_at <= ?1 \
UNION ALL \
SELECT queue, 'running', count(*), NULL FROM helix_jobs WHERE state = 'running' GROUP BY queue \
UNION ALL \
SELECT queue, state, count(*), NULL FROM helix_jobs \
    WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY queue, state";

const TOTALS: &str = "\
SELECT queue, completed_total, failed_total, lease_expiries_total FROM helix_job_queues";

/// One entry of the `errors` column.
#[derive(Deserialize)]
struct StoredError {
    attempt: u32,
    /// Milliseconds since the Unix epoch.
    at: i64,
    error: String,
}

/// The state operators see: scheduled or retryable jobs that are due count as available.
pub(super) fn reported(state: JobState, run_at: i64, now: i64) -> JobState {
    match state {
        JobState::Scheduled | JobState::Retryable if run_at <= now => JobState::Available,
        other => other,
    }
}

fn state_of(text: &str) -> Result<JobState, JobError> {
    text.parse().map_err(JobError::Backend)
}

/// A row of [`JOB_COLUMNS`] as the job operators see at `now`.
pub(super) fn job(row: &SqliteRow, now: i64) -> Result<Job, JobError> {
    let get = |e: sqlx::Error| JobError::Backend(format!("reading a job row: {e}"));
    let optional_time = |index: usize| -> Result<_, JobError> {
        row.try_get::<Option<i64>, _>(index)
            .map_err(get)?
            .map(time)
            .transpose()
    };
    let run_at: i64 = row.try_get(4).map_err(get)?;
    let errors: Vec<StoredError> = serde_json::from_str(row.try_get(16).map_err(get)?)
        .map_err(|e| JobError::Backend(format!("reading a job's errors: {e}")))?;
    Ok(Job {
        id: parse_id(row.try_get(0).map_err(get)?)?,
        queue: row.try_get(1).map_err(get)?,
        state: reported(state_of(row.try_get(2).map_err(get)?)?, run_at, now),
        priority: row.try_get(3).map_err(get)?,
        run_at: time(run_at)?,
        attempts: row.try_get(5).map_err(get)?,
        max_attempts: row.try_get(6).map_err(get)?,
        timeout_ms: row
            .try_get::<Option<i64>, _>(7)
            .map_err(get)?
            .map(|ms| ms.max(0) as u64),
        lease_until: optional_time(8)?,
        worker: row.try_get(9).map_err(get)?,
        created_at: time(row.try_get(10).map_err(get)?)?,
        updated_at: time(row.try_get(11).map_err(get)?)?,
        finished_at: optional_time(12)?,
        unique_key: row.try_get(13).map_err(get)?,
        kind: row.try_get(14).map_err(get)?,
        payload: row.try_get(15).map_err(get)?,
        errors: errors
            .into_iter()
            .map(|e| {
                Ok(AttemptError {
                    attempt: e.attempt,
                    at: time(e.at)?,
                    error: e.error,
                })
            })
            .collect::<Result<_, JobError>>()?,
    })
}

impl SqliteJobs {
    pub(super) async fn get_job(&self, id: JobId) -> Result<Option<Job>, JobError> {
        let row = sqlx::query(&GET)
            .bind(id_text(id))
            .fetch_optional(&self.read)
            .await
            .map_err(self.err())?;
        let now = now_ms();
        row.map(|row| job(&row, now)).transpose()
    }

    pub(super) async fn list_jobs(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        let now = now_ms();
        let rows = sqlx::query(&LIST)
            .bind(filter.queue.as_deref())
            .bind(filter.before.map(id_text))
            .bind(filter.state.map(JobState::as_str))
            .bind(now)
            .bind(filter.limit)
            .fetch_all(&self.read)
            .await
            .map_err(self.err())?;
        rows.iter().map(|row| job(row, now)).collect()
    }

    pub(super) async fn queue_stats(&self) -> Result<Vec<QueueStats>, JobError> {
        // One read transaction: the counts and the totals come from the same snapshot.
        let mut tx = self.read.begin().await.map_err(self.err())?;
        let now = now_ms();
        let totals: Vec<(String, i64, i64, i64)> = sqlx::query_as(TOTALS)
            .fetch_all(&mut *tx)
            .await
            .map_err(self.err())?;
        let counts: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(COUNTS)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;

        let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
        fn of(queues: &mut BTreeMap<String, QueueStats>, queue: String) -> &mut QueueStats {
            queues.entry(queue).or_insert_with_key(|queue| QueueStats {
                queue: queue.clone(),
                ..QueueStats::default()
            })
        }
        for (queue, completed, failed, expiries) in totals {
            let stats = of(&mut queues, queue);
            stats.completed_total = completed as u64;
            stats.failed_total = failed as u64;
            stats.lease_expiries_total = expiries as u64;
        }
        for (queue, state, count, min_run_at) in counts {
            let count = count as u64;
            let stats = of(&mut queues, queue);
            match state_of(&state)? {
                JobState::Scheduled => stats.scheduled += count,
                JobState::Available => {
                    stats.available += count;
                    // Age of the oldest available job: since its run_at, when it became so.
                    if let Some(run_at) = min_run_at {
                        let age = now.saturating_sub(run_at).max(0) as u64;
                        stats.oldest_available_ms =
                            Some(stats.oldest_available_ms.map_or(age, |a| a.max(age)));
                    }
                }
                JobState::Running => stats.running += count,
                JobState::Retryable => stats.retryable += count,
                JobState::Completed => stats.completed += count,
                JobState::Failed => stats.failed += count,
                JobState::Cancelled => stats.cancelled += count,
            }
        }
        Ok(queues.into_values().collect())
    }
}
