//! The worker's Prometheus metrics: what this worker did per queue (from its counters) and what
//! the backend holds per queue (from `stats`), refreshed by one task every few seconds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use helix_jobs::worker::{CountersSnapshot, QueueCounters};
use helix_jobs::{JobBackend, QueueStats, Worker};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::services::ServiceState;

const REFRESH: Duration = Duration::from_secs(5);

struct Exported {
    /// Events of this worker: fetched, completed, retried, failed, timed_out, panicked,
    /// lease_lost, released, backend_errors.
    events: IntCounterVec,
    /// Jobs per queue and state, as the backend counts them.
    jobs: IntGaugeVec,
    /// The backend's totals per queue: completed, failed, lease_expiries.
    totals: IntGaugeVec,
    oldest: IntGaugeVec,
}

impl Exported {
    fn new(registry: &Registry) -> Self {
        let events = IntCounterVec::new(
            Opts::new(
                "jobs_worker_events_total",
                "What this worker did, per queue",
            ),
            &["queue", "event"],
        )
        .expect("static metric definition is valid");
        let jobs = gauge_vec(
            "jobs_queue_jobs",
            "Jobs per queue and state",
            &["queue", "state"],
        );
        let totals = gauge_vec(
            "jobs_queue_totals",
            "Ever completed, failed for good, and lease expiries, per queue (all workers)",
            &["queue", "kind"],
        );
        let oldest = gauge_vec(
            "jobs_queue_oldest_available_ms",
            "Age of the oldest job waiting to run, per queue",
            &["queue"],
        );
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(jobs.clone()),
            Box::new(totals.clone()),
            Box::new(oldest.clone()),
        ] {
            registry.register(c).expect("registered once");
        }
        Self {
            events,
            jobs,
            totals,
            oldest,
        }
    }

    fn counters(&self, queue: &str, now: &CountersSnapshot, before: &CountersSnapshot) {
        let pairs = [
            ("fetched", now.fetched - before.fetched),
            ("completed", now.completed - before.completed),
            ("retried", now.retried - before.retried),
            ("failed", now.failed - before.failed),
            ("timed_out", now.timed_out - before.timed_out),
            ("panicked", now.panicked - before.panicked),
            ("lease_lost", now.lease_lost - before.lease_lost),
            ("released", now.released - before.released),
            ("backend_errors", now.backend_errors - before.backend_errors),
        ];
        for (event, delta) in pairs {
            self.events.with_label_values(&[queue, event]).inc_by(delta);
        }
    }

    fn stats(&self, s: &QueueStats) {
        let q = s.queue.as_str();
        let states = [
            ("scheduled", s.scheduled),
            ("available", s.available),
            ("running", s.running),
            ("retryable", s.retryable),
            ("completed", s.completed),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
        ];
        for (state, n) in states {
            self.jobs.with_label_values(&[q, state]).set(n as i64);
        }
        let totals = [
            ("completed", s.completed_total),
            ("failed", s.failed_total),
            ("lease_expiries", s.lease_expiries_total),
        ];
        for (kind, n) in totals {
            self.totals.with_label_values(&[q, kind]).set(n as i64);
        }
        self.oldest
            .with_label_values(&[q])
            .set(s.oldest_available_ms.unwrap_or(0) as i64);
    }
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition is valid")
}

/// Register the metrics and start the task that refreshes them until the service stops.
pub fn export(state: &ServiceState, worker: &Worker) {
    let exported = Exported::new(state.metrics().registry());
    let counters: BTreeMap<String, Arc<QueueCounters>> = worker.counters().clone();
    let backend = state.jobs().map(|j| j.backend().clone());
    let stop = state.stopping().clone();
    state.tasks().spawn(async move {
        let mut last: BTreeMap<String, CountersSnapshot> = BTreeMap::new();
        loop {
            refresh(&exported, &counters, &mut last, backend.as_deref()).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REFRESH) => {}
            }
        }
    });
}

async fn refresh(
    exported: &Exported,
    counters: &BTreeMap<String, Arc<QueueCounters>>,
    last: &mut BTreeMap<String, CountersSnapshot>,
    backend: Option<&dyn JobBackend>,
) {
    for (queue, c) in counters {
        let now = c.snapshot();
        let before = last.get(queue).cloned().unwrap_or_default();
        exported.counters(queue, &now, &before);
        last.insert(queue.clone(), now);
    }
    let Some(backend) = backend else { return };
    match backend.stats().await {
        Ok(stats) => stats.iter().for_each(|s| exported.stats(s)),
        Err(e) => tracing::debug!(error = %e, "job stats unavailable for metrics"),
    }
}
