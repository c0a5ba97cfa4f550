//! What a worker counts per queue, for `GET /metrics` and the shutdown report.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters of one queue on this worker since it started.
#[derive(Debug, Default)]
pub struct QueueCounters {
    pub fetched: AtomicU64,
    pub completed: AtomicU64,
    /// Attempts that failed and will run again.
    pub retried: AtomicU64,
    /// Jobs failed for good by this worker (the dead letters it made).
    pub failed: AtomicU64,
    pub timed_out: AtomicU64,
    pub panicked: AtomicU64,
    /// Jobs this worker lost to lease expiry or cancellation while running them.
    pub lease_lost: AtomicU64,
    /// Jobs handed back at shutdown.
    pub released: AtomicU64,
    pub backend_errors: AtomicU64,
}

/// A copy of [`QueueCounters`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CountersSnapshot {
    pub fetched: u64,
    pub completed: u64,
    pub retried: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub panicked: u64,
    pub lease_lost: u64,
    pub released: u64,
    pub backend_errors: u64,
}

impl QueueCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            fetched: get(&self.fetched),
            completed: get(&self.completed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            timed_out: get(&self.timed_out),
            panicked: get(&self.panicked),
            lease_lost: get(&self.lease_lost),
            released: get(&self.released),
            backend_errors: get(&self.backend_errors),
        }
    }
}
