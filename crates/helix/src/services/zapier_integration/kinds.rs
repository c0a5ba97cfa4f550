//! The job kinds that carry events out: [`Fanout`] turns one stored event into one delivery per
//! subscribed endpoint, and [`Deliver`] makes one attempt of one delivery, signed with the
//! Standard Webhooks headers. Both run on the worker, queue [`QUEUE`]; the deliveries of an
//! endpoint that is failing (timing out, refusing) go to a lane of their own, [`SLOW_QUEUE`], so
//! that endpoints which hold a connection open until the timeout never take the slots healthy
//! endpoints are delivered from.
//!
//! A delivery's schedule is its own: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after
//! each failure (±20 %), at least 60 s after a 429 or a timeout, a `Retry-After` honoured up to
//! an hour. `410 Gone` unsubscribes the endpoint at once; an endpoint whose deliveries have
//! failed for [`DISABLE_AFTER`] without a success in between is disabled, and its owner finds
//! that in the audit log. Both kinds are idempotent: a fan-out run twice creates no second
//! delivery, and an attempt of a delivery that is no longer pending does nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use helix_jobs::{JobBackend, JobContext, JobFailure, JobId, JobKind, NewJob, Unique};
use helix_store::audit::AuditEvent;
use helix_store::webhooks::{
    Attempt, AttemptRecord, Delivery, DeliveryContext, DeliveryStatus, Event, Subscription,
};
use helix_store::Store;
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::signature;
use crate::shared::outbound::Guard;

/// Where webhook jobs run; give it a concurrency of its own (`HELIX_WORKER_QUEUES`).
pub const QUEUE: &str = "webhooks";
/// Where deliveries to endpoints in a run of failures wait their turn.
pub const SLOW_QUEUE: &str = "webhooks-slow";

/// The wait after failed attempt n (from 1); after the last entry the delivery has failed.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// At least this long after a 429 or a timeout.
pub const BACKOFF_FLOOR: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// An endpoint failing this long without a success is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// How much of a response is read (and thrown away) so the connection can be reused.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A job of kind `K` as the backend takes it; with a key, one per key a day.
fn job<K: JobKind>(payload: &K::Payload, key: Option<String>, max_attempts: u32) -> NewJob {
    NewJob {
        id: JobId::new(),
        kind: K::NAME.to_owned(),
        queue: QUEUE.to_owned(),
        payload: serde_json::to_string(payload).expect("a webhook payload serialises"),
        priority: 0,
        delay: Duration::ZERO,
        max_attempts: Some(max_attempts),
        timeout: None,
        unique: key.map(|key| Unique {
            key,
            window: Duration::from_secs(24 * 3600),
        }),
    }
}

/// The fan-out job of a batch of stored events. No unique key: a fan-out run twice creates
/// nothing twice, and one job per batch keeps the queue's cost per event small.
pub fn fanout_job(events: Vec<Uuid>) -> NewJob {
    job::<Fanout>(&FanoutPayload { events }, None, 10)
}

/// The job of a delivery's next attempts; `run` tells runs apart (0 the first, a replay's time,
/// a move's attempt); `made` attempts of this run came before it; `slow` puts it in the failing
/// endpoints' lane.
pub fn deliver_job(delivery: Uuid, run: i64, made: u32, slow: bool) -> NewJob {
    let attempts = (SCHEDULE.len() as u32 + 1).saturating_sub(made).max(1);
    let lane = if slow { ":slow" } else { "" };
    let mut job = job::<Deliver>(
        &DeliverPayload { delivery, made },
        Some(format!("webhook.deliver:{delivery}:{run}{lane}")),
        attempts,
    );
    if slow {
        job.queue = SLOW_QUEUE.to_owned();
    }
    job
}

/// What both kinds need.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub attempts: Arc<super::attempts::AttemptWriter>,
    pub jobs: Arc<dyn JobBackend>,
    pub guard: Guard,
    pub client: reqwest::Client,
}

impl Context {
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<dyn JobBackend>,
        guard: Guard,
        timeout: Duration,
    ) -> Self {
        let client = guard.clone().client(timeout);
        Self {
            attempts: Arc::new(super::attempts::AttemptWriter::new(store.clone())),
            store,
            jobs,
            guard,
            client,
        }
    }
}

fn retry(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::retry(e)
}

/// Creates the deliveries of a batch of events and queues them.
pub struct Fanout(pub Context);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutPayload {
    pub events: Vec<Uuid>,
}

impl JobKind for Fanout {
    const NAME: &'static str = "webhook.fanout";
    const QUEUE: &'static str = QUEUE;
    type Payload = FanoutPayload;

    async fn run(&self, payload: FanoutPayload, _ctx: JobContext) -> Result<(), JobFailure> {
        let hooks = self.0.store.webhooks();
        let active = hooks.active_subscriptions().await.map_err(retry)?;
        if active.is_empty() {
            return Ok(());
        }
        let mut jobs = Vec::new();
        for id in payload.events {
            // An event pruned since it was queued has nobody left to tell.
            let Some(event) = hooks.event(id).await.map_err(retry)? else {
                continue;
            };
            let wanting: Vec<Subscription> = active
                .iter()
                .filter(|s| s.wants(&event.event_type))
                .cloned()
                .collect();
            if wanting.is_empty() {
                continue;
            }
            let ids = hooks
                .create_deliveries(&event, &wanting, now_us())
                .await
                .map_err(retry)?;
            let lanes = wanting.iter().map(|s| s.failing_since_us.is_some());
            jobs.extend(
                ids.iter()
                    .zip(lanes)
                    .map(|(id, slow)| deliver_job(*id, 0, 0, slow)),
            );
        }
        for chunk in jobs.chunks(500) {
            self.0.jobs.enqueue(chunk).await.map_err(retry)?;
        }
        Ok(())
    }
}

/// One attempt of one delivery.
pub struct Deliver(pub Context);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverPayload {
    pub delivery: Uuid,
    /// Attempts of this run made by an earlier job (one that moved it to the slow lane).
    #[serde(default)]
    pub made: u32,
}

/// How an attempt went, before it is recorded.
#[derive(Debug)]
enum Answer {
    Ok(u16),
    Gone,
    /// Throttled or timed out: at least [`BACKOFF_FLOOR`], or what `Retry-After` asked.
    Slow {
        status: Option<u16>,
        wait: Duration,
        error: String,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// The target may not be reached at all (inside the network): no retry helps.
    Refused(String),
}

impl JobKind for Deliver {
    const NAME: &'static str = "webhook.deliver";
    const QUEUE: &'static str = QUEUE;
    type Payload = DeliverPayload;

    async fn run(&self, payload: DeliverPayload, ctx: JobContext) -> Result<(), JobFailure> {
        let hooks = self.0.store.webhooks();
        let found = hooks
            .delivery_context(payload.delivery)
            .await
            .map_err(retry)?;
        let Some(DeliveryContext {
            delivery,
            subscription: Some(subscription),
            event,
        }) = found
        else {
            return Ok(());
        };
        if delivery.status != DeliveryStatus::Pending {
            return Ok(());
        }
        // This run's attempts so far, counting those of the job that moved it here.
        let made = payload.made + ctx.attempt - 1;
        if subscription.failing_since_us.is_some() && ctx.queue == QUEUE {
            // Its endpoint started failing since this job was queued: move to the slow lane.
            let moved = deliver_job(delivery.id, ctx.attempt.into(), made, true);
            self.0.jobs.enqueue(&[moved]).await.map_err(retry)?;
            return Ok(());
        }
        let Some(event) = event else {
            return Err(JobFailure::permanent("the event is gone"));
        };
        let started = Instant::now();
        let at_us = now_us();
        let answer = self.send(&subscription, &event).await;
        let attempt = Attempt {
            n: delivery.attempt_count + 1,
            at_us,
            status_code: answer.status(),
            duration_ms: started.elapsed().as_millis() as u64,
            error: answer.error(),
        };
        self.settle(&delivery, &subscription, made + 1, attempt, answer)
            .await
    }
}

impl Answer {
    fn status(&self) -> Option<u16> {
        match self {
            Answer::Ok(s) => Some(*s),
            Answer::Gone => Some(410),
            Answer::Slow { status, .. } | Answer::Failed { status, .. } => *status,
            Answer::Refused(_) => None,
        }
    }

    fn error(&self) -> Option<String> {
        match self {
            Answer::Ok(_) => None,
            Answer::Gone => Some("410 Gone: unsubscribed".into()),
            Answer::Slow { error, .. } | Answer::Failed { error, .. } | Answer::Refused(error) => {
                Some(error.clone())
            }
        }
    }
}

/// The Standard Webhooks body: `{type, timestamp, data}` with the event's JSON as `data`.
fn body(event: &Event) -> String {
    let at = chrono::DateTime::from_timestamp_micros(event.received_us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    format!(
        r#"{{"type":{},"timestamp":"{at}","data":{}}}"#,
        serde_json::Value::String(event.event_type.clone()),
        event.payload
    )
}

/// The message id: the event's, the same on every attempt and every endpoint, so receivers can
/// drop repeats.
pub fn message_id(event: Uuid) -> String {
    format!("msg_{}", event.simple())
}

impl Deliver {
    async fn send(&self, subscription: &Subscription, event: &Event) -> Answer {
        let url = match self.0.guard.check_url(&subscription.target_url) {
            Ok(url) => url,
            Err(e) => return Answer::Refused(format!("target refused: {e}")),
        };
        let body = body(event);
        let id = message_id(event.id);
        let timestamp = chrono::Utc::now().timestamp();
        let key = signature::key(&subscription.secret);
        let request = self
            .0
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature::sign(&key, &id, timestamp, body.as_bytes()),
            )
            .body(body);
        match request.send().await {
            Ok(response) => answer(response).await,
            Err(e) if e.is_timeout() => Answer::Slow {
                status: None,
                wait: BACKOFF_FLOOR,
                error: "timed out".into(),
            },
            Err(e) if is_refused(&e) => Answer::Refused(format!("target refused: {}", chain(&e))),
            Err(e) => Answer::Failed {
                status: None,
                error: chain(&e),
            },
        }
    }

    /// Record the attempt, then decide: done, retry later (`Err(RetryAfter)`), or given up.
    async fn settle(
        &self,
        delivery: &Delivery,
        subscription: &Subscription,
        run_attempt: u32,
        attempt: Attempt,
        answer: Answer,
    ) -> Result<(), JobFailure> {
        let hooks = self.0.store.webhooks();
        let now = attempt.at_us;
        let n = run_attempt as usize;
        let (status, wait) = match &answer {
            Answer::Ok(_) => (DeliveryStatus::Succeeded, None),
            Answer::Gone => (DeliveryStatus::Gone, None),
            Answer::Refused(_) => (DeliveryStatus::Failed, None),
            Answer::Slow { wait, .. } => next(n).map_or((DeliveryStatus::Failed, None), |d| {
                (DeliveryStatus::Pending, Some(d.max(*wait)))
            }),
            Answer::Failed { .. } => next(n).map_or((DeliveryStatus::Failed, None), |d| {
                (DeliveryStatus::Pending, Some(d))
            }),
        };
        let error = attempt.error.clone().unwrap_or_default();
        let record = AttemptRecord {
            attempt,
            status,
            next_attempt_us: wait.map(|w| now + w.as_micros() as i64),
        };
        if !self
            .0
            .attempts
            .record(delivery.id, record)
            .await
            .map_err(retry)?
        {
            return Ok(());
        }
        match answer {
            Answer::Ok(_) if subscription.failing_since_us.is_some() => {
                hooks
                    .mark_endpoint(subscription.id, true, now)
                    .await
                    .map_err(retry)?;
            }
            Answer::Ok(_) => {}
            Answer::Gone => {
                self.disable(
                    subscription,
                    "the endpoint answered 410 Gone",
                    DeliveryStatus::Gone,
                    now,
                )
                .await?;
            }
            _ => self.failing(subscription, now).await?,
        }
        match wait {
            Some(wait) => Err(JobFailure::retry_after(error, wait)),
            None => Ok(()),
        }
    }

    /// A failed attempt: start or continue the endpoint's run of failures, and disable it when
    /// the run is too long.
    async fn failing(&self, subscription: &Subscription, now: i64) -> Result<(), JobFailure> {
        let hooks = self.0.store.webhooks();
        let since = hooks
            .mark_endpoint(subscription.id, false, now)
            .await
            .map_err(retry)?;
        if since.is_some_and(|since| now - since >= DISABLE_AFTER.as_micros() as i64) {
            self.disable(
                subscription,
                "every delivery failed for 5 days",
                DeliveryStatus::Failed,
                now,
            )
            .await?;
        }
        Ok(())
    }

    async fn disable(
        &self,
        subscription: &Subscription,
        reason: &str,
        status: DeliveryStatus,
        now: i64,
    ) -> Result<(), JobFailure> {
        let disabled = self
            .0
            .store
            .webhooks()
            .disable_subscription(subscription.id, reason, status, now)
            .await
            .map_err(retry)?;
        if disabled {
            tracing::warn!(subscription = %subscription.id, reason, "webhook endpoint disabled");
            let event = AuditEvent::new("webhook_endpoint_disabled")
                .actor(subscription.owner)
                .target(format!("webhook_subscription:{}", subscription.id))
                .detail(serde_json::json!({
                    "reason": reason,
                    "target_url": crate::shared::redact::url(&subscription.target_url),
                }));
            self.0.store.audit().append(event).await.map_err(retry)?;
        }
        Ok(())
    }
}

/// The wait after failed attempt `n`, with ±20 % jitter; `None` after the last.
fn next(n: usize) -> Option<Duration> {
    let base = SCHEDULE.get(n.checked_sub(1)?)?;
    let spread = rand::thread_rng().gen_range(-0.2..=0.2);
    Some(base.mul_f64(1.0 + spread))
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    drain(response).await;
    match status {
        200..=299 => Answer::Ok(status),
        410 => Answer::Gone,
        429 => Answer::Slow {
            status: Some(status),
            wait: wait
                .unwrap_or(BACKOFF_FLOOR)
                .clamp(BACKOFF_FLOOR, RETRY_AFTER_CAP),
            error: "HTTP 429".into(),
        },
        _ => Answer::Failed {
            status: Some(status),
            error: format!("HTTP {status}"),
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form counts from now).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// Read what the endpoint sent, up to a bound, so the connection can be reused; the body itself
/// is never kept (it may echo anything).
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > MAX_RESPONSE_BYTES {
            break;
        }
    }
}

/// Whether a send failed because the guard refused every address of the target.
fn is_refused(e: &reqwest::Error) -> bool {
    chain(e).contains("inside the network")
}

/// An error with its causes, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spreads_by_a_fifth_and_ends() {
        for (n, base) in SCHEDULE.iter().enumerate() {
            let wait = next(n + 1).unwrap();
            assert!(
                wait >= base.mul_f64(0.8) && wait <= base.mul_f64(1.2),
                "{wait:?}"
            );
        }
        assert_eq!(next(SCHEDULE.len() + 1), None);
        assert_eq!(next(0), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(600);
        headers.insert(RETRY_AFTER, later.to_rfc2822().parse().unwrap());
        let got = retry_after(&headers).unwrap().as_secs();
        assert!((595..=600).contains(&got), "{got}");
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn the_body_wraps_the_event_verbatim() {
        let event = Event {
            id: Uuid::nil(),
            source: "zapier".into(),
            event_id: "e".into(),
            event_type: "lead.created".into(),
            payload: r#"{"b":1, "a":[2]}"#.into(),
            received_us: 0,
        };
        assert_eq!(
            body(&event),
            r#"{"type":"lead.created","timestamp":"1970-01-01T00:00:00.000Z","data":{"b":1, "a":[2]}}"#
        );
    }
}
