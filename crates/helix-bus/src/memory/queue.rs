//! One in-process job queue: the jobs, and which of them are available, delayed or leased.
//!
//! Plain data with no lock and no clock of its own: [`super::MemoryBus`] holds every queue behind
//! one mutex and passes `now` in, so tests can pause tokio time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::QueueStats;

struct Job {
    payload: Bytes,
    /// Fencing token of the latest lease; 0 before the first one.
    token: u64,
    attempts: u32,
}

/// A job handed out by [`QueueState::reserve`].
pub(super) struct Taken {
    pub(super) id: String,
    pub(super) payload: Bytes,
    pub(super) token: u64,
    pub(super) attempt: u32,
}

#[derive(Default)]
pub(super) struct QueueState {
    jobs: HashMap<String, Job>,
    /// Ready now, oldest first.
    available: VecDeque<String>,
    /// (due, enqueue sequence, id): ordered by due time, then FIFO.
    delayed: BTreeSet<(Instant, u64, String)>,
    /// id → lease deadline.
    leased: HashMap<String, Instant>,
    /// (deadline, id): the same leases ordered by deadline, to reclaim expired ones cheaply.
    deadlines: BTreeSet<(Instant, String)>,
    seq: u64,
}

impl QueueState {
    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub(super) fn enqueue(&mut self, id: String, payload: Bytes, delay: Duration, now: Instant) {
        let job = Job {
            payload,
            token: 0,
            attempts: 0,
        };
        self.jobs.insert(id.clone(), job);
        self.make_available(id, delay, now);
    }

    /// Lease the oldest available job after reclaiming due delayed jobs and expired leases.
    pub(super) fn reserve(&mut self, lease: Duration, now: Instant) -> Option<Taken> {
        self.promote(now);
        let id = self.available.pop_front()?;
        let job = self.jobs.get_mut(&id)?;
        job.token += 1;
        job.attempts += 1;
        let deadline = later(now, lease);
        self.leased.insert(id.clone(), deadline);
        self.deadlines.insert((deadline, id.clone()));
        Some(Taken {
            payload: job.payload.clone(),
            token: job.token,
            attempt: job.attempts,
            id,
        })
    }

    /// Delete a job still leased under `token`; false when the lease was lost.
    pub(super) fn ack(&mut self, id: &str, token: u64) -> bool {
        if !self.unlease(id, token) {
            return false;
        }
        self.jobs.remove(id);
        true
    }

    /// Give a job still leased under `token` back, available after `delay`.
    pub(super) fn release(&mut self, id: &str, token: u64, delay: Duration, now: Instant) -> bool {
        if !self.unlease(id, token) {
            return false;
        }
        self.make_available(id.to_owned(), delay, now);
        true
    }

    /// Counts as they stand at `now`: a delayed job that is due counts as available, an expired
    /// lease still counts as leased until a reserve reclaims it (as on Redis).
    pub(super) fn stats(&self, now: Instant) -> QueueStats {
        let due = self
            .delayed
            .iter()
            .take_while(|(at, ..)| *at <= now)
            .count();
        QueueStats {
            available: (self.available.len() + due) as u64,
            leased: self.leased.len() as u64,
            delayed: (self.delayed.len() - due) as u64,
        }
    }

    fn make_available(&mut self, id: String, delay: Duration, now: Instant) {
        if delay.is_zero() {
            self.available.push_back(id);
        } else {
            self.seq += 1;
            self.delayed.insert((later(now, delay), self.seq, id));
        }
    }

    /// End the lease of `id` if `token` is still the current one.
    fn unlease(&mut self, id: &str, token: u64) -> bool {
        let current = self.jobs.get(id).map(|job| job.token);
        let Some(deadline) = self.leased.get(id).copied() else {
            return false;
        };
        if current != Some(token) {
            return false;
        }
        self.leased.remove(id);
        self.deadlines.remove(&(deadline, id.to_owned()));
        true
    }

    /// Move due delayed jobs, then expired leases, to the back of `available`.
    fn promote(&mut self, now: Instant) {
        while let Some(first) = self.delayed.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, _, id)) = self.delayed.pop_first() {
                self.available.push_back(id);
            }
        }
        while let Some(first) = self.deadlines.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, id)) = self.deadlines.pop_first() {
                self.leased.remove(&id);
                self.available.push_back(id);
            }
        }
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}
