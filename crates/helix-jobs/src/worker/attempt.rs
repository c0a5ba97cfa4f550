//! One attempt: decode the payload, run the handler under its timeout, catch a panic, and turn
//! what happened into an [`Outcome`] (or nothing, when the job was taken away mid-run).

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::kind::{JobContext, JobFailure, Registry};
use crate::model::{Claim, Outcome, MAX_ERROR_CHARS};
use crate::worker::config::QueueConfig;
use crate::worker::metrics::QueueCounters;

/// Run one claimed job. `None`: `stop` fired first (lease lost, or shutdown past its grace) and
/// nothing should be reported.
pub(crate) async fn run(
    registry: &Registry,
    claim: &Claim,
    queue: &QueueConfig,
    counters: &QueueCounters,
    stop: CancellationToken,
) -> Option<Outcome> {
    let max = claim.max_attempts.unwrap_or(queue.max_attempts);
    let Some(handler) = registry.get(&claim.kind) else {
        let known: Vec<_> = registry.names().collect();
        let error = format!(
            "unknown job kind {:?}; this worker knows {}",
            claim.kind,
            known.join(", ")
        );
        return Some(retry_or_fail(error, claim.attempt, max, queue));
    };
    let ctx = JobContext {
        id: claim.id,
        queue: claim.queue.clone(),
        attempt: claim.attempt,
        max_attempts: max,
        cancel: stop.clone(),
    };
    let future = match handler.start(&claim.payload, ctx) {
        Ok(future) => future,
        Err(e) => {
            let error = format!("payload does not fit {}: {e}", claim.kind);
            return Some(Outcome::Fail { error: cut(error) });
        }
    };
    let limit = claim.timeout.unwrap_or(queue.timeout);
    // Why catch_unwind on the future rather than a task of its own: one task per job is enough,
    // and dropping the future on timeout or stop cancels the handler at its next await.
    let guarded = AssertUnwindSafe(future).catch_unwind();
    let result = tokio::select! {
        biased;
        () = stop.cancelled() => return None,
        r = tokio::time::timeout(limit, guarded) => r,
    };
    Some(match result {
        Ok(Ok(Ok(()))) => Outcome::Completed,
        Ok(Ok(Err(JobFailure::Retry(e)))) => retry_or_fail(e, claim.attempt, max, queue),
        Ok(Ok(Err(JobFailure::RetryAfter(e, delay)))) => {
            retry_or_fail(e, claim.attempt, max, queue).after(delay)
        }
        Ok(Ok(Err(JobFailure::Permanent(e)))) => Outcome::Fail { error: cut(e) },
        Ok(Err(panic)) => {
            QueueCounters::add(&counters.panicked, 1);
            let error = format!("handler panicked: {}", panic_text(&*panic));
            retry_or_fail(error, claim.attempt, max, queue)
        }
        Err(_) => {
            QueueCounters::add(&counters.timed_out, 1);
            let error = format!("timed out after {}", seconds(limit));
            retry_or_fail(error, claim.attempt, max, queue)
        }
    })
}

fn retry_or_fail(error: String, attempt: u32, max: u32, queue: &QueueConfig) -> Outcome {
    let error = cut(error);
    if attempt >= max {
        Outcome::Fail { error }
    } else {
        Outcome::Retry {
            error,
            delay: queue.backoff.delay(attempt),
        }
    }
}

impl Outcome {
    /// A retry at the handler's own delay instead of the queue's backoff.
    fn after(self, delay: Duration) -> Outcome {
        match self {
            Outcome::Retry { error, .. } => Outcome::Retry { error, delay },
            other => other,
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Errors are kept per attempt; a handler that returns a whole document is cut short.
fn cut(mut error: String) -> String {
    if let Some((at, _)) = error.char_indices().nth(MAX_ERROR_CHARS) {
        // Cut one more so the marker fits within what backends keep.
        let keep = error[..at].char_indices().last().map_or(0, |(i, _)| i);
        error.truncate(keep);
        error.push('…');
    }
    error
}
