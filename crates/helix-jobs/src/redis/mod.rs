//! The Redis job backend: the platform's broker keeps the job state machine, one Lua script per
//! step so every step is atomic, with all times from the server's clock (`TIME`, milliseconds).
//!
//! Owns the key layout (documented in `lua/common.lua`), the scripts ([`scripts`]), the per-job
//! values they keep ([`record`]), turning replies into the model ([`decode`]), the connection
//! ([`connect`]: one shared, multiplexed [`ConnectionManager`] that reconnects on its own) and
//! wake-up hints ([`wake`]).
//!
//! Built for throughput: a job is a field (named by its id) of three hashes: a binary record
//! every step rewrites, its fixed data, its errors; plus one entry in the sorted set of its queue
//! and state. So a batch of any size reads and writes its jobs with a constant number of
//! commands (one `HMGET`, one `HSET`, one command per index), and the per-job work left is
//! packing records. Available jobs are ranked by a score of priority band then the millisecond
//! they became available (ties by id, as Redis orders equal scores by member), so a fetch takes
//! the head of one set. Scheduled and retryable jobs wait in sets by `run_at`, running ones in a
//! set by lease deadline, finished ones in sets ordered by id text, which for UUIDv7 ids is
//! creation order (ranges for `list`, candidates for `prune`).
//!
//! Scripts build key names from the prefix they are given, so this backend needs a standalone
//! Redis (or a primary with replicas), not Redis Cluster.

mod connect;
mod decode;
mod record;
mod scripts;
mod wake;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{ScriptInvocation, Value};

use crate::model::{MAX_ERROR_CHARS, PRIORITY_RANGE};
use crate::{
    BackendKind, Claim, Enqueued, FetchRequest, Finish, Job, JobBackend, JobError, JobId, JobState,
    ListFilter, NewJob, Outcome, QueueStats, Ticket, Wakeups,
};
use connect::Endpoint;
use scripts::Scripts;

/// How long `ping` waits for `PONG`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest delay or lease sent to the scripts: 2^44 ms (557 years) keeps every time below the
/// bound the available score allows (see `lua/common.lua`).
const MAX_MS: u64 = 1 << 44;
/// Most jobs one `list` returns.
const MAX_LIST: u32 = 10_000;
/// Jobs one prune script deletes at most, so that Redis keeps serving others between chunks.
const PRUNE_CHUNK: u64 = 5_000;

/// Jobs on a Redis server.
pub struct RedisJobs {
    /// Why a `ConnectionManager`: one multiplexed connection serves every caller concurrently
    /// (clones are cheap handles) and is replaced transparently after a Redis restart.
    conn: ConnectionManager,
    endpoint: Endpoint,
    prefix: String,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobs")
            .field("redis", &self.endpoint.description)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisJobs {
    /// Connect to `redis://` or `rediss://` (a few attempts with backoff, then `Unavailable`).
    /// Every key and channel starts with `prefix`.
    pub async fn open(url: &str, prefix: &str) -> Result<Self, JobError> {
        let endpoint = Endpoint::parse(url)?;
        let conn = endpoint.command_connection().await?;
        tracing::info!(target: "helix_jobs", redis = %endpoint.description, "job backend connected");
        Ok(Self {
            conn,
            endpoint,
            prefix: prefix.to_owned(),
            scripts: Scripts::new(),
        })
    }

    async fn run(&self, call: &ScriptInvocation<'_>) -> Result<Value, JobError> {
        call.invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.endpoint.error(&e))
    }

    /// A script of one job that answers `{'missing'}`, `{'conflict', state}` or
    /// `{'ok', now, record, data, errors}` (cancel, retry).
    async fn change(
        &self,
        script: &redis::Script,
        id: JobId,
        action: &'static str,
    ) -> Result<Job, JobError> {
        let mut call = script.prepare_invoke();
        call.arg(&self.prefix).arg(id.to_string());
        let mut reply = decode::items(self.run(&call).await?)?.into_iter();
        let status = decode::text(reply.next().unwrap_or(Value::Nil))?;
        match status.as_str() {
            "missing" => Err(JobError::NotFound(id)),
            "conflict" => {
                let state = decode::text(reply.next().unwrap_or(Value::Nil))?;
                let state: JobState = state.parse().map_err(JobError::Backend)?;
                Err(JobError::Conflict { id, state, action })
            }
            "ok" => {
                let now = decode::int(&reply.next().unwrap_or(Value::Nil))?;
                let values = decode::job_values(&mut reply);
                decode::job(id, now, values)?.ok_or(JobError::NotFound(id))
            }
            other => Err(JobError::Backend(format!(
                "unexpected answer {other:?} from the {action} script"
            ))),
        }
    }
}

/// Whole milliseconds, rounded up (a nonzero delay is never "now", a lease never cut short) and
/// capped at [`MAX_MS`].
fn millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(MAX_MS).min(MAX_MS)
}

/// The error of an attempt as a JSON string literal, cut to [`MAX_ERROR_CHARS`] characters.
fn error_literal(error: &str) -> String {
    let cut = match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((at, _)) => &error[..at],
        None => error,
    };
    // Serializing a string cannot fail; the fallback only keeps this free of `unwrap`.
    serde_json::to_string(cut).unwrap_or_else(|_| "\"\"".to_owned())
}

/// What the jobs of one enqueue group share.
#[derive(PartialEq)]
struct Header<'a> {
    queue: &'a str,
    priority: i32,
    delay_ms: u64,
    /// -1: the queue's default.
    max_attempts: i64,
}

impl<'a> Header<'a> {
    fn of(job: &'a NewJob) -> Self {
        Self {
            queue: &job.queue,
            priority: job
                .priority
                .clamp(*PRIORITY_RANGE.start(), *PRIORITY_RANGE.end()),
            delay_ms: millis(job.delay),
            max_attempts: job
                .max_attempts
                .map_or(-1, |n| i64::from(n.min(i32::MAX as u32))),
        }
    }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[async_trait]
impl JobBackend for RedisJobs {
    fn kind(&self) -> BackendKind {
        BackendKind::Redis
    }

    fn describe(&self) -> String {
        self.endpoint.description.clone()
    }

    async fn ping(&self) -> Result<(), JobError> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(PING_TIMEOUT, ping.exec_async(&mut conn)).await {
            Ok(result) => result.map_err(|e| self.endpoint.error(&e)),
            Err(_) => Err(self
                .endpoint
                .unavailable(format!("no PONG within {PING_TIMEOUT:?}"))),
        }
    }

    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, JobError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.scripts.enqueue.prepare_invoke();
        call.arg(&self.prefix);
        // Runs of jobs with the same queue and options go as one group (see `lua/enqueue.lua`).
        for group in jobs.chunk_by(|a, b| Header::of(a) == Header::of(b)) {
            let header = Header::of(&group[0]);
            call.arg(header.queue)
                .arg(header.priority)
                .arg(header.delay_ms)
                .arg(header.max_attempts)
                .arg(group.len());
            for job in group {
                let unique = match &job.unique {
                    Some(u) if !u.window.is_zero() => format!("{}:{}", millis(u.window), u.key),
                    _ => String::new(),
                };
                call.arg(job.id.to_string())
                    .arg(record::pack_data(job))
                    .arg(unique);
            }
        }
        let reply = decode::items(self.run(&call).await?)?;
        if reply.len() != jobs.len() {
            return Err(JobError::Backend(
                "the enqueue script answered for a different number of jobs".into(),
            ));
        }
        jobs.iter()
            .zip(reply)
            .map(|(job, holder)| match decode::text(holder)?.as_str() {
                "" => Ok(Enqueued {
                    id: job.id,
                    inserted: true,
                }),
                holder => Ok(Enqueued {
                    id: decode::parse_id(holder)?,
                    inserted: false,
                }),
            })
            .collect()
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<Claim>, JobError> {
        let mut call = self.scripts.fetch.prepare_invoke();
        call.arg(&self.prefix)
            .arg(request.queue)
            .arg(request.max)
            .arg(millis(request.lease))
            .arg(request.worker)
            .arg(request.max_attempts);
        decode::claims(request.queue, self.run(&call).await?)
    }

    async fn extend(&self, tickets: &[Ticket], lease: Duration) -> Result<Vec<bool>, JobError> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.scripts.extend.prepare_invoke();
        call.arg(&self.prefix).arg(millis(lease));
        for ticket in tickets {
            call.arg(ticket.id.to_string()).arg(ticket.token);
        }
        decode::flags(self.run(&call).await?, tickets.len())
    }

    async fn finish(&self, results: &[Finish]) -> Result<Vec<bool>, JobError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.scripts.finish.prepare_invoke();
        call.arg(&self.prefix);
        for result in results {
            call.arg(result.ticket.id.to_string())
                .arg(result.ticket.token);
            match &result.outcome {
                Outcome::Completed => call.arg("c"),
                Outcome::Retry { error, delay } => {
                    call.arg("r").arg(error_literal(error)).arg(millis(*delay))
                }
                Outcome::Fail { error } => call.arg("f").arg(error_literal(error)),
            };
        }
        decode::flags(self.run(&call).await?, results.len())
    }

    async fn release(&self, tickets: &[Ticket]) -> Result<Vec<bool>, JobError> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.scripts.release.prepare_invoke();
        call.arg(&self.prefix);
        for ticket in tickets {
            call.arg(ticket.id.to_string()).arg(ticket.token);
        }
        decode::flags(self.run(&call).await?, tickets.len())
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, JobError> {
        let mut call = self.scripts.get.prepare_invoke();
        call.arg(&self.prefix).arg(id.to_string());
        let mut reply = decode::items(self.run(&call).await?)?.into_iter();
        let now = decode::int(&reply.next().unwrap_or(Value::Nil))?;
        decode::job(id, now, decode::job_values(&mut reply))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, JobError> {
        let mut call = self.scripts.list.prepare_invoke();
        call.arg(&self.prefix)
            .arg(filter.state.map(JobState::as_str).unwrap_or(""))
            .arg(filter.queue.as_deref().unwrap_or(""))
            .arg(filter.limit.min(MAX_LIST))
            .arg(optional(filter.before));
        let mut reply = decode::items(self.run(&call).await?)?.into_iter();
        let now = decode::int(&reply.next().unwrap_or(Value::Nil))?;
        let mut jobs = Vec::with_capacity(reply.len() / 4);
        while let Some(id) = reply.next() {
            let id = decode::parse_id(&decode::text(id)?)?;
            jobs.extend(decode::job(id, now, decode::job_values(&mut reply))?);
        }
        Ok(jobs)
    }

    async fn cancel(&self, id: JobId) -> Result<Job, JobError> {
        self.change(&self.scripts.cancel, id, "cancel").await
    }

    async fn retry(&self, id: JobId) -> Result<Job, JobError> {
        self.change(&self.scripts.retry, id, "retry").await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>, JobError> {
        let mut call = self.scripts.stats.prepare_invoke();
        call.arg(&self.prefix);
        let mut reply = decode::items(self.run(&call).await?)?.into_iter();
        let now = decode::int(&reply.next().unwrap_or(Value::Nil))?;
        let mut stats = reply
            .map(|row| decode::queue_stats(row, now))
            .collect::<Result<Vec<_>, _>>()?;
        stats.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(stats)
    }

    async fn prune(&self, completed: Duration, failed: Duration) -> Result<u64, JobError> {
        // Why several script calls: each job's deletion is atomic on its own, and chunks keep a
        // large prune from stalling every other client of Redis.
        let mut deleted = 0;
        loop {
            let mut call = self.scripts.prune.prepare_invoke();
            call.arg(&self.prefix)
                .arg(millis(completed))
                .arg(millis(failed))
                .arg(PRUNE_CHUNK);
            let reply = decode::items(self.run(&call).await?)?;
            let [count, more] = <[Value; 2]>::try_from(reply).map_err(|_| {
                JobError::Backend("the prune script answered without its counts".into())
            })?;
            deleted += u64::try_from(decode::int(&count)?).unwrap_or(0);
            if decode::int(&more)? == 0 {
                return Ok(deleted);
            }
        }
    }

    async fn wakeups(&self) -> Result<Wakeups, JobError> {
        let channel = format!("{}jobs:wake", self.prefix);
        wake::listen(&self.endpoint, channel, wake::CLIENT_NAME).await
    }
}
