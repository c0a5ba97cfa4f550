//! Enqueue on SQLite: a batch of jobs, their unique keys and their queues' rows, in one write
//! transaction of at most four statements whatever the batch size.

use std::collections::HashMap;

use sqlx::SqliteConnection;

use super::{after, id_text, json_batch, now_ms, parse_id, SqliteJobs};
use crate::error::JobError;
use crate::model::{Enqueued, JobId, JobState, NewJob};

/// One job as its JSON row: id, queue, kind, payload, state, priority, run_at, max_attempts,
/// timeout_ms, unique_key.
type JobRow<'a> = (
    String,
    &'a str,
    &'a str,
    &'a str,
    &'static str,
    i32,
    i64,
    Option<u32>,
    Option<i64>,
    Option<&'a str>,
);

const INSERT_JOBS: &str = "\
INSERT INTO helix_jobs (id, queue, kind, payload, state, priority, run_at, max_attempts, \
                        timeout_ms, unique_key, created_at, updated_at) \
SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, \
       value->>8, value->>9, ?2, ?2 \
FROM json_each(?1)";

/// Holders of the given keys whose window has not ended.
const HOLDERS: &str = "\
SELECT key, job_id FROM helix_job_unique \
WHERE key IN (SELECT value FROM json_each(?1)) AND expires_at > ?2";

/// Take keys (`[key, job_id, expires_at]` rows), over an expired holder if there is one.
/// (`WHERE true` tells SQLite's parser the `ON CONFLICT` is the upsert's, not a join's.)
const TAKE_KEYS: &str = "\
INSERT INTO helix_job_unique (key, job_id, expires_at) \
SELECT value->>0, value->>1, value->>2 FROM json_each(?1) WHERE true \
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at";

const ADD_QUEUES: &str = "\
INSERT INTO helix_job_queues (queue) SELECT value FROM json_each(?1) WHERE true \
ON CONFLICT (queue) DO NOTHING";

impl SqliteJobs {
    pub(super) async fn enqueue_batch(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let new_queues = self.unknown_queues(jobs);
        let mut tx = self.begin().await?;
        let now = now_ms();
        // Who holds each key: the database's live holders first, then this batch's own takers,
        // so a repeat within the batch gets the first one's answer.
        let mut holders = self.holders(&mut tx, jobs, now).await?;
        let mut results = Vec::with_capacity(jobs.len());
        let mut rows: Vec<JobRow> = Vec::with_capacity(jobs.len());
        let mut keys = Vec::new();
        for job in jobs {
            if let Some(unique) = &job.unique {
                if let Some(&holder) = holders.get(unique.key.as_str()) {
                    results.push(Enqueued {
                        id: holder,
                        inserted: false,
                    });
                    continue;
                }
                holders.insert(unique.key.clone(), job.id);
                keys.push((&unique.key, id_text(job.id), after(now, unique.window)));
            }
            rows.push(job_row(job, now));
            results.push(Enqueued {
                id: job.id,
                inserted: true,
            });
        }
        if !rows.is_empty() {
            sqlx::query(INSERT_JOBS)
                .bind(json_batch(&rows)?)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        if !keys.is_empty() {
            sqlx::query(TAKE_KEYS)
                .bind(json_batch(&keys)?)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        if !new_queues.is_empty() {
            sqlx::query(ADD_QUEUES)
                .bind(json_batch(&new_queues)?)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())?;
        self.known_queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(new_queues);
        if !rows.is_empty() {
            self.wake().await;
        }
        Ok(results)
    }

    /// The distinct queues of the batch this backend has not seen yet.
    fn unknown_queues(&self, jobs: &[NewJob]) -> Vec<String> {
        let known = self
            .known_queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut new: Vec<String> = Vec::new();
        for job in jobs {
            if !known.contains(&job.queue) && !new.contains(&job.queue) {
                new.push(job.queue.clone());
            }
        }
        new
    }

    /// The live holders of the batch's unique keys (none asked when the batch has no key).
    async fn holders(
        &self,
        conn: &mut SqliteConnection,
        jobs: &[NewJob],
        now: i64,
    ) -> Result<HashMap<String, JobId>, JobError> {
        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|job| job.unique.as_ref().map(|u| u.key.as_str()))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let held: Vec<(String, String)> = sqlx::query_as(HOLDERS)
            .bind(json_batch(&keys)?)
            .bind(now)
            .fetch_all(&mut *conn)
            .await
            .map_err(self.err())?;
        held.into_iter()
            .map(|(key, id)| Ok((key, parse_id(&id)?)))
            .collect()
    }
}

/// Zero delay: available with `run_at` = now; otherwise scheduled at now + delay.
fn job_row(job: &NewJob, now: i64) -> JobRow<'_> {
    let state = if job.delay.is_zero() {
        JobState::Available
    } else {
        JobState::Scheduled
    };
    (
        id_text(job.id),
        &job.queue,
        &job.kind,
        &job.payload,
        state.as_str(),
        job.priority,
        after(now, job.delay),
        job.max_attempts,
        job.timeout
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        job.unique.as_ref().map(|u| u.key.as_str()),
    )
}
