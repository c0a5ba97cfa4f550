//! Open-loop publishing: send `k` (0, 1, 2, …) is due at `start + k / rate` and belongs to worker
//! `k mod workers` (a room's first connection, or one of the publisher connections), so the total
//! rate is fixed whatever the server does and acks are never waited for.
//!
//! As in `drive`, one blocking-pool thread wakes each worker at its due time with
//! `std::thread::sleep` (tens of µs precision; tokio's timer would round up to whole ms). A
//! `Notify` keeps at most one permit, so a worker that falls behind accumulates no queue: it
//! computes its own due times, finds them past, sends at once and counts the send as late.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::tally::Window;
use crate::stats::LATE_SEND;

#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    end: Instant,
    rate: f64,
    workers: u64,
    wakes: Box<[Notify]>,
}

impl Pacer {
    /// Start waking `workers` workers for sends due in `[start, end)` at `rate`/s in total; the
    /// handle answers how many sends were due in `[measure_from, end)`.
    pub fn spawn(
        start: Instant,
        measure_from: Instant,
        end: Instant,
        rate: f64,
        workers: usize,
    ) -> (Arc<Pacer>, JoinHandle<u64>) {
        let pacer = Arc::new(Pacer {
            start,
            end,
            rate,
            workers: workers.max(1) as u64,
            wakes: (0..workers.max(1)).map(|_| Notify::new()).collect(),
        });
        let dispatcher = pacer.clone();
        let due_in_window = tokio::task::spawn_blocking(move || dispatcher.dispatch(measure_from));
        (pacer, due_in_window)
    }

    /// [`Pacer::spawn`] over a run's window.
    pub fn over(window: &Window, rate: f64, workers: usize) -> (Arc<Pacer>, JoinHandle<u64>) {
        Pacer::spawn(window.start, window.measure_from, window.end, rate, workers)
    }

    /// Computed from the start, not by adding intervals, so rounding never drifts the rate.
    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    fn dispatch(&self, measure_from: Instant) -> u64 {
        let mut in_window = 0;
        for k in 0u64.. {
            let due = self.due(k);
            if due >= self.end {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            self.wakes[(k % self.workers) as usize].notify_one();
            in_window += u64::from(due >= measure_from);
        }
        in_window
    }
}

/// One send that has come due.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    /// Its place in the whole schedule (also the published `seq`).
    pub k: u64,
    /// Sent more than [`LATE_SEND`] after `intended`.
    pub late: bool,
}

/// One worker's share of the schedule: sends `worker`, `worker + workers`, …
#[derive(Debug)]
pub struct Turns {
    pacer: Arc<Pacer>,
    next: u64,
}

impl Turns {
    pub fn new(pacer: Arc<Pacer>, worker: usize) -> Turns {
        Turns {
            pacer,
            next: worker as u64,
        }
    }

    /// Wait for this worker's next send; `None` once the schedule has ended. Cancel-safe: the
    /// turn is only taken when the future completes.
    pub async fn next(&mut self) -> Option<Due> {
        let intended = self.pacer.due(self.next);
        if intended >= self.pacer.end {
            return None;
        }
        let wake = &self.pacer.wakes[(self.next % self.pacer.workers) as usize];
        // A permit left over from a turn we were late for wakes us early: check the time.
        while Instant::now() < intended {
            wake.notified().await;
        }
        let due = Due {
            k: self.next,
            late: intended.elapsed() > LATE_SEND,
        };
        self.next += self.pacer.workers;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_share_the_schedule_round_robin() {
        let start = Instant::now();
        let end = start + Duration::from_millis(100);
        let (pacer, due_in_window) = Pacer::spawn(start, start, end, 200.0, 2);
        let (mut first, mut second) = (Turns::new(pacer.clone(), 0), Turns::new(pacer, 1));
        let (a, b) = tokio::join!(
            async {
                let mut seen = Vec::new();
                while let Some(due) = first.next().await {
                    seen.push(due.k);
                }
                seen
            },
            async {
                let mut seen = Vec::new();
                while let Some(due) = second.next().await {
                    seen.push(due.k);
                }
                seen
            }
        );
        assert_eq!(a, (0..20).step_by(2).collect::<Vec<_>>());
        assert_eq!(b, (1..20).step_by(2).collect::<Vec<_>>());
        assert_eq!(due_in_window.await.unwrap(), 20);
    }
}
