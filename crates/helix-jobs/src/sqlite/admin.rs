//! What operators change on SQLite: cancel and retry one job (each one write transaction, which
//! tells a refused move apart from an unknown id), and prune finished jobs.

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::SqliteConnection;

use super::read::{job, reported, JOB_COLUMNS};
use super::{id_text, now_ms, SqliteJobs};
use crate::error::JobError;
use crate::model::{Job, JobId, JobState};

/// Job ?1 cancelled at ?2 unless it is terminal; a running one loses its lease, so its worker's
/// token is refused from now on.
static CANCEL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE helix_jobs SET state = 'cancelled', finished_at = ?2, updated_at = ?2, \
             lease_until = NULL, worker = NULL \
         WHERE id = ?1 AND state IN ('scheduled', 'available', 'running', 'retryable') \
         RETURNING {JOB_COLUMNS}"
    )
});

/// Job ?1 available at ?2 with no attempts used, if it is failed, cancelled, or scheduled or
/// retryable and not yet due (a due one is reported available, and retrying that is refused).
static RETRY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE helix_jobs SET state = 'available', attempts = 0, run_at = ?2, finished_at = NULL, \
             lease_until = NULL, worker = NULL, updated_at = ?2 \
         WHERE id = ?1 AND (state IN ('failed', 'cancelled') \
                            OR (state IN ('scheduled', 'retryable') AND run_at > ?2)) \
         RETURNING {JOB_COLUMNS}"
    )
});

/// How many finished jobs one prune transaction deletes at most. Why chunks: a prune of a large
/// backlog in one transaction would hold the single write lock (and so every worker) for
/// seconds; a chunk takes milliseconds, and a prune stopped half way is simply resumed by the
/// next one.
const PRUNE_CHUNK: i64 = 5_000;

/// Up to ?2 completed or cancelled jobs finished by ?1. (The first `state IN` repeats the partial
/// index's `WHERE` so SQLite uses it.)
const PRUNE_COMPLETED: &str = "\
DELETE FROM helix_jobs WHERE rowid IN ( \
    SELECT rowid FROM helix_jobs \
    WHERE state IN ('completed', 'failed', 'cancelled') AND state IN ('completed', 'cancelled') \
      AND finished_at <= ?1 LIMIT ?2)";

/// Up to ?2 failed jobs finished by ?1.
const PRUNE_FAILED: &str = "\
DELETE FROM helix_jobs WHERE rowid IN ( \
    SELECT rowid FROM helix_jobs \
    WHERE state IN ('completed', 'failed', 'cancelled') AND state = 'failed' \
      AND finished_at <= ?1 LIMIT ?2)";

/// Unique keys whose window has ended hold nothing any more.
const PRUNE_KEYS: &str = "DELETE FROM helix_job_unique WHERE expires_at <= ?1";

impl SqliteJobs {
    pub(super) async fn cancel_job(&self, id: JobId) -> Result<Job, JobError> {
        self.move_one(id, &CANCEL, "cancel").await
    }

    pub(super) async fn retry_job(&self, id: JobId) -> Result<Job, JobError> {
        let job = self.move_one(id, &RETRY, "retry").await?;
        self.wake().await;
        Ok(job)
    }

    /// One guarded update of one job; when it matches nothing, why: unknown id or a state the
    /// action does not apply to (as operators see it).
    async fn move_one(&self, id: JobId, sql: &str, action: &'static str) -> Result<Job, JobError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        let row = sqlx::query(sql)
            .bind(id_text(id))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err())?;
        let Some(row) = row else {
            let state = self.state_of(&mut tx, id, now).await?;
            return Err(match state {
                Some(state) => JobError::Conflict { id, state, action },
                None => JobError::NotFound(id),
            });
        };
        let job = job(&row, now)?;
        tx.commit().await.map_err(self.err())?;
        Ok(job)
    }

    /// The state operators see for job `id`, if it exists.
    async fn state_of(
        &self,
        conn: &mut SqliteConnection,
        id: JobId,
        now: i64,
    ) -> Result<Option<JobState>, JobError> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT state, run_at FROM helix_jobs WHERE id = ?1")
                .bind(id_text(id))
                .fetch_optional(conn)
                .await
                .map_err(self.err())?;
        row.map(|(state, run_at)| {
            let state: JobState = state.parse().map_err(JobError::Backend)?;
            Ok(reported(state, run_at, now))
        })
        .transpose()
    }

    pub(super) async fn prune_finished(
        &self,
        completed: Duration,
        failed: Duration,
    ) -> Result<u64, JobError> {
        let now = now_ms();
        let cutoff =
            |age: Duration| now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let mut deleted = 0;
        for (sql, before) in [
            (PRUNE_COMPLETED, cutoff(completed)),
            (PRUNE_FAILED, cutoff(failed)),
        ] {
            loop {
                let mut tx = self.begin().await?;
                let done = sqlx::query(sql)
                    .bind(before)
                    .bind(PRUNE_CHUNK)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?
                    .rows_affected();
                tx.commit().await.map_err(self.err())?;
                deleted += done;
                if done < PRUNE_CHUNK as u64 {
                    break;
                }
            }
        }
        let mut tx = self.begin().await?;
        sqlx::query(PRUNE_KEYS)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(deleted)
    }
}
