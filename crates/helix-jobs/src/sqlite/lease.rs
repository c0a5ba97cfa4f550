//! What workers call on SQLite: fetch (reclaim, promote, lease), extend, finish and release. Each is
//! one write transaction for the whole batch, of a handful of statements whatever its size; the
//! queues' totals grow once per step.
//!
//! Why no `RETURNING`: sqlx hands every result row from its connection thread to the async task
//! through a channel, a thread hand-off measured at ~15 µs a row, several times SQLite's own work
//! per job. So a step first reads what it will move as one row (a JSON array from
//! `json_group_array`), then updates those rows; both run in the step's `BEGIN IMMEDIATE`
//! transaction, so nothing changes in between, and the update's row count is checked against the
//! read all the same.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use serde::Deserialize;
use sqlx::SqliteConnection;

use super::{after, id_text, json_batch, now_ms, parse_id, SqliteJobs};
use crate::error::JobError;
use crate::model::{
    Claim, FetchRequest, Finish, Outcome, Ticket, MAX_ATTEMPTS_LIMIT, MAX_ERROR_CHARS,
};

/// The error an attempt gets when its lease ran out.
const LEASE_EXPIRED: &str = "lease expired";

/// `errors` with `{attempt, at, error}` appended, dropping the oldest beyond the limit.
fn append_error(at: &str, error: &str) -> String {
    format!(
        "json_insert(CASE WHEN json_array_length(errors) >= {MAX_ATTEMPTS_LIMIT} \
                          THEN json_remove(errors, '$[0]') ELSE errors END, \
                     '$[#]', json_object('attempt', attempts, 'at', {at}, 'error', {error}))"
    )
}

/// Running jobs of queue ?1 whose lease ended by ?2.
const EXPIRED: &str = "queue = ?1 AND state = 'running' AND lease_until <= ?2";

/// Expired leases on their last attempt (by the job's own limit, else the queue's ?3): failed.
pub(super) static RECLAIM_FAILED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE helix_jobs SET state = 'failed', finished_at = ?2, errors = {}, \
             lease_until = NULL, worker = NULL, updated_at = ?2 \
         WHERE {EXPIRED} AND attempts >= coalesce(max_attempts, ?3)",
        append_error("?2", &format!("'{LEASE_EXPIRED}'")),
    )
});

/// The other expired leases (run after [`RECLAIM_FAILED`]): available again, keeping their
/// `run_at` and so their place in line.
pub(super) static RECLAIM_AVAILABLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE helix_jobs SET state = 'available', errors = {}, \
             lease_until = NULL, worker = NULL, updated_at = ?2 \
         WHERE {EXPIRED}",
        append_error("?2", &format!("'{LEASE_EXPIRED}'")),
    )
});

/// Scheduled and retryable jobs of queue ?1 due by ?2 become available (`run_at` stays: it is
/// when they became available, which orders them).
pub(super) const PROMOTE: &str = "\
UPDATE helix_jobs SET state = 'available' \
WHERE queue = ?1 AND state IN ('scheduled', 'retryable') AND run_at <= ?2";

/// Up to ?2 available jobs of queue ?1 in fetch order, as they will be once leased: one row, a
/// JSON array of [`Picked`]. (An aggregate does not promise its input's order, so the sort keys
/// come along.)
pub(super) const PICK: &str = "\
SELECT json_group_array(json_array(r, id, kind, payload, attempts + 1, max_attempts, timeout_ms, \
                                   token + 1, priority, run_at)) \
FROM (SELECT rowid AS r, id, kind, payload, attempts, max_attempts, timeout_ms, token, priority, \
             run_at \
      FROM helix_jobs WHERE queue = ?1 AND state = 'available' \
      ORDER BY priority DESC, run_at, id LIMIT ?2)";

/// Lease the picked rows (rowids in ?1) until ?3 to worker ?4; now is ?2.
const CLAIM: &str = "\
UPDATE helix_jobs SET state = 'running', attempts = attempts + 1, token = token + 1, \
       lease_until = ?3, worker = ?4, updated_at = ?2 \
WHERE rowid IN (SELECT value FROM json_each(?1)) AND state = 'available'";

/// One picked job: rowid, id, kind, payload, attempt, max_attempts, timeout_ms, token, priority,
/// run_at.
#[derive(Deserialize)]
struct Picked(
    i64,
    String,
    String,
    String,
    u32,
    Option<u32>,
    Option<u64>,
    u64,
    i32,
    i64,
);

/// Which tickets of the batch (`[i, id, token]` rows in ?1) still hold their job: one row, a
/// JSON array of `[i, queue]`.
pub(super) const HELD: &str = "\
SELECT json_group_array(json_array(t.i, j.queue)) \
FROM (SELECT value->>0 AS i, value->>1 AS t_id, value->>2 AS t_token FROM json_each(?1)) AS t \
JOIN helix_jobs AS j ON j.id = t.t_id AND j.token = t.t_token AND j.state = 'running'";

/// An update of the jobs the tickets of ?1 (`t_id`, `t_token`, then per-step columns) hold.
fn tickets_update(set: &str, extra: &str) -> String {
    format!(
        "UPDATE helix_jobs SET {set} \
         FROM (SELECT value->>0 AS t_id, value->>1 AS t_token{extra} FROM json_each(?1)) AS t \
         WHERE helix_jobs.id = t.t_id AND helix_jobs.token = t.t_token \
           AND helix_jobs.state = 'running'"
    )
}

/// Tickets `[id, token]`; the new lease ends at ?2; now is ?3.
static EXTEND: LazyLock<String> =
    LazyLock::new(|| tickets_update("lease_until = ?2, updated_at = ?3", ""));

/// Tickets `[id, token]`, available again (in their old place in line) without the attempt they
/// used; now is ?2.
static RELEASE: LazyLock<String> = LazyLock::new(|| {
    tickets_update(
        "state = 'available', attempts = max(attempts - 1, 0), lease_until = NULL, worker = NULL, \
         updated_at = ?2",
        "",
    )
});

/// Tickets `[id, token]` completed at ?2.
static COMPLETE: LazyLock<String> = LazyLock::new(|| {
    tickets_update(
        "state = 'completed', finished_at = ?2, lease_until = NULL, worker = NULL, \
         updated_at = ?2",
        "",
    )
});

/// Tickets `[id, token, run_at, error]` retryable at their run_at, error appended at ?2.
static RETRY: LazyLock<String> = LazyLock::new(|| {
    tickets_update(
        &format!(
            "state = 'retryable', run_at = t.t_run_at, errors = {}, lease_until = NULL, \
             worker = NULL, updated_at = ?2",
            append_error("?2", "t.t_error")
        ),
        ", value->>2 AS t_run_at, value->>3 AS t_error",
    )
});

/// Tickets `[id, token, error]` failed at ?2, error appended.
static FAIL: LazyLock<String> = LazyLock::new(|| {
    tickets_update(
        &format!(
            "state = 'failed', finished_at = ?2, errors = {}, lease_until = NULL, worker = NULL, \
             updated_at = ?2",
            append_error("?2", "t.t_error")
        ),
        ", value->>2 AS t_error",
    )
});

/// Add a step's counts to a queue's totals (creating its row if it is somehow missing).
const ADD_TOTALS: &str = "\
INSERT INTO helix_job_queues (queue, completed_total, failed_total, lease_expiries_total) \
VALUES (?1, ?2, ?3, ?4) \
ON CONFLICT (queue) DO UPDATE SET \
    completed_total = completed_total + excluded.completed_total, \
    failed_total = failed_total + excluded.failed_total, \
    lease_expiries_total = lease_expiries_total + excluded.lease_expiries_total";

/// What one step adds to a queue's totals.
#[derive(Default)]
struct Totals {
    completed: u64,
    failed: u64,
    lease_expiries: u64,
}

/// The error text kept for an attempt: at most [`MAX_ERROR_CHARS`] characters, cut at a
/// character boundary (the worker cuts first; this keeps any caller's text within the limit).
fn cut(error: &str) -> &str {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => &error[..end],
        None => error,
    }
}

/// The queue of each ticket that still holds its job, by position in the batch. A repeat of an
/// (id, token) pair is never sent, so it is answered false, as it would be if the tickets went
/// one after the other.
type Held = Vec<Option<String>>;

fn json_err(what: &str) -> impl Fn(serde_json::Error) -> JobError + '_ {
    move |e| JobError::Backend(format!("reading {what}: {e}"))
}

impl SqliteJobs {
    pub(super) async fn fetch_batch(
        &self,
        request: &FetchRequest<'_>,
    ) -> Result<Vec<Claim>, JobError> {
        let mut tx = self.begin().await?;
        let now = now_ms();
        self.reclaim(&mut tx, request, now).await?;
        self.execute(&mut tx, PROMOTE, (request.queue, now, None))
            .await?;
        let mut claims = Vec::new();
        if request.max > 0 {
            let picked: String = sqlx::query_scalar(PICK)
                .bind(request.queue)
                .bind(request.max)
                .fetch_one(&mut *tx)
                .await
                .map_err(self.err())?;
            let mut picked: Vec<Picked> =
                serde_json::from_str(&picked).map_err(json_err("picked jobs"))?;
            if !picked.is_empty() {
                let rowids: Vec<i64> = picked.iter().map(|p| p.0).collect();
                let leased = sqlx::query(CLAIM)
                    .bind(json_batch(&rowids)?)
                    .bind(now)
                    .bind(after(now, request.lease))
                    .bind(request.worker)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?
                    .rows_affected();
                self.check_moved(leased, picked.len())?;
            }
            // Fetch order: highest priority, then oldest run_at, then oldest id.
            picked.sort_by(|a, b| (b.8, a.9, &a.1).cmp(&(a.8, b.9, &b.1)));
            claims = picked
                .into_iter()
                .map(|p| claim(p, request.queue))
                .collect::<Result<_, _>>()?;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(claims)
    }

    /// Reclaim the queue's expired leases and count them (and the failures among them).
    async fn reclaim(
        &self,
        conn: &mut SqliteConnection,
        request: &FetchRequest<'_>,
        now: i64,
    ) -> Result<(), JobError> {
        let params = (request.queue, now, Some(request.max_attempts));
        let failed = self.execute(conn, &RECLAIM_FAILED, params).await?;
        let returned = self.execute(conn, &RECLAIM_AVAILABLE, params).await?;
        if failed + returned == 0 {
            return Ok(());
        }
        let totals = Totals {
            completed: 0,
            failed,
            lease_expiries: failed + returned,
        };
        self.add_totals(conn, request.queue, &totals).await
    }

    /// Run a statement on (queue, now, optional third parameter); how many rows it changed.
    async fn execute(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        (queue, now, third): (&str, i64, Option<u32>),
    ) -> Result<u64, JobError> {
        let mut query = sqlx::query(sql).bind(queue).bind(now);
        if let Some(third) = third {
            query = query.bind(third);
        }
        Ok(query
            .execute(conn)
            .await
            .map_err(self.err())?
            .rows_affected())
    }

    async fn add_totals(
        &self,
        conn: &mut SqliteConnection,
        queue: &str,
        totals: &Totals,
    ) -> Result<(), JobError> {
        sqlx::query(ADD_TOTALS)
            .bind(queue)
            .bind(totals.completed as i64)
            .bind(totals.failed as i64)
            .bind(totals.lease_expiries as i64)
            .execute(conn)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Which tickets hold their job (see [`Held`]).
    async fn held(
        &self,
        conn: &mut SqliteConnection,
        tickets: impl Iterator<Item = Ticket>,
    ) -> Result<Held, JobError> {
        let mut seen = HashSet::new();
        let mut rows = Vec::new();
        let mut count = 0;
        for (i, ticket) in tickets.enumerate() {
            count += 1;
            if seen.insert((ticket.id, ticket.token)) {
                rows.push((i, id_text(ticket.id), ticket.token));
            }
        }
        let mut held = vec![None; count];
        let found: String = sqlx::query_scalar(HELD)
            .bind(json_batch(&rows)?)
            .fetch_one(conn)
            .await
            .map_err(self.err())?;
        let found: Vec<(usize, String)> =
            serde_json::from_str(&found).map_err(json_err("held tickets"))?;
        for (i, queue) in found {
            if let Some(slot) = held.get_mut(i) {
                *slot = Some(queue);
            }
        }
        Ok(held)
    }

    /// Run a ticket statement (`?1` the batch, then `params` as `?2`, `?3`); rows changed.
    async fn move_tickets(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        batch: String,
        params: &[i64],
    ) -> Result<u64, JobError> {
        let mut query = sqlx::query(sql).bind(batch);
        for param in params {
            query = query.bind(*param);
        }
        Ok(query
            .execute(conn)
            .await
            .map_err(self.err())?
            .rows_affected())
    }

    /// An update must change exactly the rows its read found (they share one transaction; a
    /// difference is a bug, and the step is rolled back rather than half applied).
    fn check_moved(&self, moved: u64, expected: usize) -> Result<(), JobError> {
        if moved == expected as u64 {
            Ok(())
        } else {
            Err(JobError::Backend(format!(
                "{}: a step changed {moved} jobs where it expected {expected}",
                self.describe
            )))
        }
    }

    pub(super) async fn extend_batch(
        &self,
        tickets: &[Ticket],
        lease: Duration,
    ) -> Result<Vec<bool>, JobError> {
        self.move_held(tickets, &EXTEND, |now| vec![after(now, lease), now])
            .await
    }

    pub(super) async fn release_batch(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError> {
        let released = self.move_held(tickets, &RELEASE, |now| vec![now]).await?;
        if released.contains(&true) {
            self.wake().await;
        }
        Ok(released)
    }

    /// Extend or release: one statement over the tickets that hold their job.
    async fn move_held(
        &self,
        tickets: &[Ticket],
        sql: &str,
        params: impl FnOnce(i64) -> Vec<i64>,
    ) -> Result<Vec<bool>, JobError> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_ms();
        let held = self.held(&mut tx, tickets.iter().copied()).await?;
        let rows: Vec<(String, u64)> = tickets
            .iter()
            .zip(&held)
            .filter(|(_, held)| held.is_some())
            .map(|(t, _)| (id_text(t.id), t.token))
            .collect();
        if !rows.is_empty() {
            let moved = self
                .move_tickets(&mut tx, sql, json_batch(&rows)?, &params(now))
                .await?;
            self.check_moved(moved, rows.len())?;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(held.iter().map(Option::is_some).collect())
    }

    pub(super) async fn finish_batch(&self, results: &[Finish]) -> Result<Vec<bool>, JobError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let now = now_ms();
        let held = self.held(&mut tx, results.iter().map(|f| f.ticket)).await?;
        let mut completed = Vec::new();
        let mut retried = Vec::new();
        let mut failed = Vec::new();
        let mut totals: HashMap<&str, Totals> = HashMap::new();
        for (result, queue) in results.iter().zip(&held) {
            let Some(queue) = queue else { continue };
            let (id, token) = (id_text(result.ticket.id), result.ticket.token);
            let totals = totals.entry(queue).or_default();
            match &result.outcome {
                Outcome::Completed => {
                    totals.completed += 1;
                    completed.push((id, token));
                }
                Outcome::Retry { error, delay } => {
                    retried.push((id, token, after(now, *delay), cut(error)));
                }
                Outcome::Fail { error } => {
                    totals.failed += 1;
                    failed.push((id, token, cut(error)));
                }
            }
        }
        let mut moved = 0;
        if !completed.is_empty() {
            let batch = json_batch(&completed)?;
            moved += self.move_tickets(&mut tx, &COMPLETE, batch, &[now]).await?;
        }
        if !retried.is_empty() {
            let batch = json_batch(&retried)?;
            moved += self.move_tickets(&mut tx, &RETRY, batch, &[now]).await?;
        }
        if !failed.is_empty() {
            let batch = json_batch(&failed)?;
            moved += self.move_tickets(&mut tx, &FAIL, batch, &[now]).await?;
        }
        self.check_moved(moved, completed.len() + retried.len() + failed.len())?;
        for (queue, totals) in &totals {
            if totals.completed + totals.failed > 0 {
                self.add_totals(&mut tx, queue, totals).await?;
            }
        }
        tx.commit().await.map_err(self.err())?;
        Ok(held.iter().map(Option::is_some).collect())
    }
}

/// A picked job as the worker's claim.
fn claim(p: Picked, queue: &str) -> Result<Claim, JobError> {
    let Picked(_, id, kind, payload, attempt, max_attempts, timeout_ms, token, _, _) = p;
    Ok(Claim {
        id: parse_id(&id)?,
        kind,
        queue: queue.to_string(),
        payload,
        attempt,
        max_attempts,
        timeout: timeout_ms.map(Duration::from_millis),
        token,
    })
}
