//! The PostgreSQL job backend: [`PgJobs`] on the store's `sqlx::PgPool`, and [`enqueue_in`] for
//! callers that enqueue inside their own transaction.
//!
//! Owns the PostgreSQL side of the job state machine. Every step is one statement (`sql.rs`):
//! batches travel as arrays, fetch locks with `FOR UPDATE SKIP LOCKED` so workers never wait for
//! one another, and times come from `clock_timestamp()`. Steps that make jobs available send
//! `NOTIFY helix_jobs` as a hint (`notify.rs`), which `listen.rs` receives. Rows and errors are
//! translated in `rows.rs`. The tables come from `helix-store`'s migration `0007_jobs.sql`.

mod listen;
mod notify;
mod rows;
mod sql;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::backend::{BackendKind, JobBackend, Wakeups};
use crate::error::JobError;
use crate::model::{
    Claim, Enqueued, FetchRequest, Finish, Job, JobId, JobState, ListFilter, NewJob, Outcome,
    QueueStats, Ticket, MAX_ATTEMPTS_LIMIT,
};

/// Statements built once from their parts (see `sql.rs`).
static ENQUEUE: LazyLock<String> = LazyLock::new(|| sql::enqueue(false));
static ENQUEUE_NOTIFYING: LazyLock<String> = LazyLock::new(|| sql::enqueue(true));
static FETCH: LazyLock<String> = LazyLock::new(sql::fetch);
static FINISH: LazyLock<String> = LazyLock::new(sql::finish);
static GET: LazyLock<String> = LazyLock::new(sql::get);
static CANCEL: LazyLock<String> = LazyLock::new(sql::cancel);
static RETRY: LazyLock<String> = LazyLock::new(sql::retry);
static STATS: LazyLock<String> = LazyLock::new(sql::stats);

/// The job queue in the tables of a PostgreSQL store.
pub struct PgJobs {
    pool: PgPool,
    /// `postgres host:port/db`, never the password.
    describe: String,
    wakeups: listen::Hub,
    hints: notify::Notifier,
}

impl PgJobs {
    pub fn new(pool: PgPool, describe: String) -> Self {
        Self {
            hints: notify::Notifier::new(pool.clone()),
            pool,
            describe,
            wakeups: listen::Hub::default(),
        }
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> JobError + '_ {
        |e| rows::error(e, &self.describe)
    }
}

/// Enqueue on the caller's connection, typically inside its transaction: the jobs (and their
/// unique keys and wake-ups) exist only once the caller commits. As [`JobBackend::enqueue`].
pub async fn enqueue_in(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<Vec<Enqueued>, JobError> {
    enqueue_on(conn, &ENQUEUE_NOTIFYING, jobs, "postgres").await
}

/// One enqueue statement (`sql::enqueue`) on a pool or a connection.
async fn enqueue_on(
    executor: impl PgExecutor<'_>,
    sql: &str,
    jobs: &[NewJob],
    backend: &str,
) -> Result<Vec<Enqueued>, JobError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sql)
        .bind(jobs.iter().map(|j| j.id.0).collect::<Vec<Uuid>>())
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.payload.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<i32>>())
        .bind(
            jobs.iter()
                .map(|j| rows::interval(j.delay))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(max_attempts).collect::<Vec<Option<i32>>>())
        .bind(jobs.iter().map(timeout_ms).collect::<Vec<Option<i64>>>())
        .bind(
            jobs.iter()
                .map(|j| j.unique.as_ref().map(|u| u.key.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(unique_window).collect::<Vec<Duration>>())
        .fetch_all(executor)
        .await
        .map_err(|e| rows::error(e, backend))?;
    rows.iter()
        .map(|row| {
            Ok(Enqueued {
                id: JobId(row.try_get("id")?),
                inserted: row.try_get("inserted")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| rows::error(e, backend))
}

fn max_attempts(job: &NewJob) -> Option<i32> {
    job.max_attempts
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

fn timeout_ms(job: &NewJob) -> Option<i64> {
    job.timeout.map(rows::millis)
}

/// Ignored by the statement for jobs without a key (it needs some value in the array).
fn unique_window(job: &NewJob) -> Duration {
    job.unique
        .as_ref()
        .map_or(Duration::ZERO, |u| rows::interval(u.window))
}

/// The first entry of each distinct ticket, in order. Why: a statement updates a row once
/// however many input rows match it, so a repeat must not reach it (its outcome would race).
fn firsts<T>(items: &[T], ticket: impl Fn(&T) -> Ticket) -> Vec<&T> {
    let mut seen = HashSet::new();
    items
        .iter()
        .filter(|item| seen.insert(ticket(item)))
        .collect()
}

/// Entry i is true when ticket i is among those the statement applied; a ticket repeated within
/// one batch counts once (its first entry), as if the repeats came after it.
fn held(tickets: impl Iterator<Item = Ticket>, applied: Vec<(Uuid, i64)>) -> Vec<bool> {
    let mut applied: HashSet<(Uuid, i64)> = applied.into_iter().collect();
    tickets
        .map(|t| applied.remove(&(t.id.0, token(t))))
        .collect()
}

/// Tokens are positive `bigint`s; one that is not can match nothing.
fn token(ticket: Ticket) -> i64 {
    i64::try_from(ticket.token).unwrap_or(-1)
}

fn ids_and_tokens<'a>(tickets: impl Iterator<Item = &'a Ticket>) -> (Vec<Uuid>, Vec<i64>) {
    tickets.map(|t| (t.id.0, token(*t))).unzip()
}

/// How `sql::finish` names an outcome, with its error text and retry delay.
fn outcome(outcome: &Outcome) -> (&'static str, Option<String>, Duration) {
    match outcome {
        Outcome::Completed => ("completed", None, Duration::ZERO),
        Outcome::Retry { error, delay } => (
            "retry",
            Some(rows::error_text(error)),
            rows::interval(*delay),
        ),
        Outcome::Fail { error } => ("failed", Some(rows::error_text(error)), Duration::ZERO),
    }
}

/// The statement of a list (states as operators see them), its parameters numbered from $1 in
/// the order `list` binds them: state, queue, cursor (those that are set), limit.
fn list_sql(filter: &ListFilter) -> String {
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut param = || {
        n += 1;
        format!("${n}")
    };
    if let Some(state) = filter.state {
        conditions.push(match state {
            JobState::Available => "(j.state = 'available' OR (j.state IN ('scheduled', \
                 'retryable') AND j.run_at <= clock.now))"
                .to_string(),
            JobState::Scheduled | JobState::Retryable => {
                format!("j.state = {} AND j.run_at > clock.now", param())
            }
            _ => format!("j.state = {}", param()),
        });
    }
    if filter.queue.is_some() {
        conditions.push(format!("j.queue = {}", param()));
    }
    if filter.before.is_some() {
        conditions.push(format!("j.id < {}", param()));
    }
    let limit = param();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!(
        "WITH clock AS (SELECT clock_timestamp() AS now) \
         SELECT {} FROM helix_jobs j CROSS JOIN clock {filter} ORDER BY j.id DESC LIMIT {limit}",
        sql::job_columns()
    )
}

impl PgJobs {
    fn jobs(&self, rows: &[PgRow]) -> Result<Vec<Job>, JobError> {
        rows.iter()
            .map(rows::job)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    /// Why cancel or retry did nothing: the job is unknown, or its state forbids it.
    async fn refusal(&self, id: JobId, action: &'static str) -> JobError {
        match self.get(id).await {
            Ok(Some(job)) => JobError::Conflict {
                id,
                state: job.state,
                action,
            },
            Ok(None) => JobError::NotFound(id),
            Err(e) => e,
        }
    }

    /// Run a ticket batch (`extend`, `release`) on the first entry of each distinct ticket:
    /// entry i tells whether ticket i held its job; also the queues of the jobs moved.
    async fn tickets(
        &self,
        sql: &str,
        tickets: &[Ticket],
        lease: Option<Duration>,
    ) -> Result<(Vec<bool>, Vec<String>), JobError> {
        if tickets.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (ids, tokens) = ids_and_tokens(firsts(tickets, |t| *t).into_iter());
        let mut query = sqlx::query_as::<_, (Uuid, i64, String)>(sql)
            .bind(ids)
            .bind(tokens);
        if let Some(lease) = lease {
            query = query.bind(rows::interval(lease));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(self.err())?;
        let (applied, queues) = rows.into_iter().map(|(id, t, q)| ((id, t), q)).unzip();
        Ok((held(tickets.iter().copied(), applied), queues))
    }
}

#[async_trait]
impl JobBackend for PgJobs {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn ping(&self) -> Result<(), JobError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        let done = enqueue_on(&self.pool, &ENQUEUE, jobs, &self.describe).await?;
        let added = jobs.iter().zip(&done).filter(|(_, e)| e.inserted);
        self.hints.hint(added.map(|(job, _)| job.queue.as_str()));
        Ok(done)
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError> {
        if request.max == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&FETCH)
            .bind(request.queue)
            .bind(i64::from(request.max))
            .bind(rows::interval(request.lease))
            .bind(request.worker)
            .bind(i32::try_from(request.max_attempts).unwrap_or(i32::MAX))
            .bind(MAX_ATTEMPTS_LIMIT as i32)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(rows::claim)
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    async fn extend(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<bool>, JobError> {
        let (held, _) = self.tickets(sql::EXTEND, tickets, Some(lease)).await?;
        Ok(held)
    }

    async fn finish(&self, results: &[Finish]) -> Result<Vec<bool>, JobError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let sent = firsts(results, |r| r.ticket);
        let (ids, tokens) = ids_and_tokens(sent.iter().map(|r| &r.ticket));
        let mut outcomes = Vec::with_capacity(sent.len());
        let mut errors = Vec::with_capacity(sent.len());
        let mut delays = Vec::with_capacity(sent.len());
        for (name, error, delay) in sent.iter().map(|r| outcome(&r.outcome)) {
            outcomes.push(name);
            errors.push(error);
            delays.push(delay);
        }
        let applied: Vec<(Uuid, i64)> = sqlx::query_as(&FINISH)
            .bind(ids)
            .bind(tokens)
            .bind(outcomes)
            .bind(errors)
            .bind(delays)
            .bind(MAX_ATTEMPTS_LIMIT as i32)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(held(results.iter().map(|r| r.ticket), applied))
    }

    async fn release(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError> {
        let (held, queues) = self.tickets(sql::RELEASE, tickets, None).await?;
        self.hints.hint(queues.iter().map(String::as_str));
        Ok(held)
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, JobError> {
        let row = sqlx::query(&GET)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.as_ref().map(rows::job).transpose().map_err(self.err())
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        let sql = list_sql(filter);
        // Bound in the order `list_sql` numbers them: only the filters that are set.
        let mut query = sqlx::query(&sql);
        match filter.state {
            None | Some(JobState::Available) => {}
            Some(state) => query = query.bind(state.as_str()),
        }
        if let Some(queue) = &filter.queue {
            query = query.bind(queue);
        }
        if let Some(before) = filter.before {
            query = query.bind(before.0);
        }
        let rows = query
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        self.jobs(&rows)
    }

    async fn cancel(&self, id: JobId) -> Result<Job, JobError> {
        let row = sqlx::query(&CANCEL)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        match row {
            Some(row) => rows::job(&row).map_err(self.err()),
            None => Err(self.refusal(id, "cancel").await),
        }
    }

    async fn retry(&self, id: JobId) -> Result<Job, JobError> {
        let row = sqlx::query(&RETRY)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        let Some(row) = row else {
            return Err(self.refusal(id, "retry").await);
        };
        let job = rows::job(&row).map_err(self.err())?;
        self.hints.hint([job.queue.as_str()]);
        Ok(job)
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, JobError> {
        let rows = sqlx::query(&STATS)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let mut stats = rows
            .iter()
            .map(rows::queue_stats)
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        // Byte order, as the other engines sort, whatever the database's collation.
        stats.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(stats)
    }

    async fn prune(&self, completed: Duration, failed: Duration) -> Result<u64, JobError> {
        let deleted: i64 = sqlx::query_scalar(sql::PRUNE)
            .bind(rows::interval(completed))
            .bind(rows::interval(failed))
            .fetch_one(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    async fn wakeups(&self) -> Result<Wakeups, JobError> {
        self.wakeups.subscribe(&self.pool, &self.describe).await
    }
}
