//! [`Jobs`]: how services and operators enqueue. Checks the kind, the payload and every option
//! before anything reaches a backend, so a bad request gets a clear error and never a stored job
//! that cannot run.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::JobBackend;
use crate::error::JobError;
use crate::kind::{JobKind, Registry};
use crate::model::{
    Enqueued, JobId, NewJob, Unique, MAX_ATTEMPTS_LIMIT, MAX_PAYLOAD_BYTES, PRIORITY_RANGE,
};

/// The longest delay accepted (an ETA further out is almost always a unit mistake).
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// The longest timeout one attempt may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The longest unique window.
pub const MAX_UNIQUE_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);
/// The most jobs one enqueue call may add.
pub const MAX_BATCH: usize = 10_000;

/// What to do when a unique key is already held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Answer with the existing job's id (`inserted: false`).
    #[default]
    Merge,
    /// Fail with [`JobError::Duplicate`].
    Reject,
}

/// Options of one enqueue; `Default` is: the kind's queue, priority 0, now, the queue's attempts
/// and timeout, no unique key.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    pub queue: Option<String>,
    pub priority: i32,
    pub delay: Duration,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub unique: Option<(Unique, OnDuplicate)>,
}

/// Enqueues typed or JSON jobs on one backend, checked against a registry.
#[derive(Clone)]
pub struct Jobs {
    backend: Arc<dyn JobBackend>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("backend", &self.backend.describe())
            .field("kinds", &self.registry)
            .finish()
    }
}

impl Jobs {
    pub fn new(backend: Arc<dyn JobBackend>, registry: Arc<Registry>) -> Self {
        Self { backend, registry }
    }

    pub fn backend(&self) -> &Arc<dyn JobBackend> {
        &self.backend
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Enqueue one job of a typed kind.
    pub async fn enqueue<K: JobKind>(
        &self,
        payload: &K::Payload,
        options: EnqueueOptions,
    ) -> Result<Enqueued, JobError> {
        let json = serde_json::to_string(payload)
            .map_err(|e| JobError::invalid(format!("payload of {}: {e}", K::NAME)))?;
        let mut out = self.enqueue_json(K::NAME, &json, &options, 1).await?;
        Ok(out.remove(0))
    }

    /// Enqueue `count` jobs of `kind` with a JSON payload (what the CLI and HTTP surface send).
    pub async fn enqueue_json(
        &self,
        kind: &str,
        payload: &str,
        options: &EnqueueOptions,
        count: usize,
    ) -> Result<Vec<Enqueued>, JobError> {
        let jobs = self.build(kind, payload, options, count)?;
        let out = self.backend.enqueue(&jobs).await?;
        if let Some((unique, OnDuplicate::Reject)) = &options.unique {
            if let Some(dup) = out.iter().find(|e| !e.inserted) {
                return Err(JobError::Duplicate {
                    key: unique.key.clone(),
                    existing: dup.id,
                });
            }
        }
        Ok(out)
    }

    /// Check everything and build the jobs, without enqueuing them.
    pub fn build(
        &self,
        kind: &str,
        payload: &str,
        options: &EnqueueOptions,
        count: usize,
    ) -> Result<Vec<NewJob>, JobError> {
        let handler = self
            .registry
            .get(kind)
            .ok_or_else(|| JobError::UnknownKind(kind.to_owned()))?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(JobError::invalid(format!(
                "payload is {} bytes; at most {MAX_PAYLOAD_BYTES}",
                payload.len()
            )));
        }
        handler
            .check(payload)
            .map_err(|e| JobError::invalid(format!("payload does not fit {kind}: {e}")))?;
        let queue = options.queue.as_deref().unwrap_or(handler.queue());
        check_options(queue, options, count)?;
        let unique = options.unique.as_ref().map(|(u, _)| u.clone());
        let job = |_| NewJob {
            id: JobId::new(),
            kind: kind.to_owned(),
            queue: queue.to_owned(),
            payload: payload.to_owned(),
            priority: options.priority,
            delay: options.delay,
            max_attempts: options.max_attempts,
            timeout: options.timeout,
            unique: unique.clone(),
        };
        Ok((0..count).map(job).collect())
    }
}

/// A queue name: 1 to 64 of `A-Z a-z 0-9 _ . : -`.
pub fn check_queue_name(queue: &str) -> Result<(), JobError> {
    let ok = !queue.is_empty()
        && queue.len() <= 64
        && queue
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(JobError::invalid(format!(
            "queue name {queue:?}: use 1 to 64 letters, digits, '_', '.', ':' or '-'"
        )))
    }
}

fn check_options(queue: &str, o: &EnqueueOptions, count: usize) -> Result<(), JobError> {
    check_queue_name(queue)?;
    if count == 0 || count > MAX_BATCH {
        return Err(JobError::invalid(format!(
            "count {count}: enqueue 1 to {MAX_BATCH} jobs at a time"
        )));
    }
    if !PRIORITY_RANGE.contains(&o.priority) {
        return Err(JobError::invalid(format!(
            "priority {}: must be from {} to {}",
            o.priority,
            PRIORITY_RANGE.start(),
            PRIORITY_RANGE.end()
        )));
    }
    if o.delay > MAX_DELAY {
        return Err(JobError::invalid("delay: at most 366 days"));
    }
    if let Some(n) = o.max_attempts {
        if n == 0 || n > MAX_ATTEMPTS_LIMIT {
            return Err(JobError::invalid(format!(
                "max_attempts {n}: must be from 1 to {MAX_ATTEMPTS_LIMIT}"
            )));
        }
    }
    if let Some(t) = o.timeout {
        if t.is_zero() || t > MAX_TIMEOUT {
            return Err(JobError::invalid(
                "timeout: more than 0 and at most 24 hours",
            ));
        }
    }
    if let Some((unique, _)) = &o.unique {
        if count > 1 {
            return Err(JobError::invalid(
                "a unique key names one job: enqueue it with count 1",
            ));
        }
        if unique.key.is_empty() || unique.key.len() > 200 {
            return Err(JobError::invalid("unique key: 1 to 200 bytes"));
        }
        if unique.window.is_zero() || unique.window > MAX_UNIQUE_WINDOW {
            return Err(JobError::invalid(
                "unique window: more than 0 and at most 31 days",
            ));
        }
    }
    Ok(())
}
