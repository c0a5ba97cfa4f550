//! What one connection saw during the measured window, merged across connections at the end.
//!
//! Each connection task owns its tally, so recording is a plain increment with no lock or atomic
//! on the hot path. Latencies go into HDR histograms in microseconds; only 2xx responses are
//! timed, so fast refusals (429s, errors) cannot flatter the percentiles.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// HTTP status codes are three digits; anything outside is counted as 599.
const STATUS_SLOTS: usize = 600;

#[derive(Debug, Clone)]
pub struct Tally {
    /// 2xx latency in µs: from the intended send time in an open loop, from the send otherwise.
    pub latency: Histogram<u64>,
    /// 2xx latency in µs from the actual send, kept in an open loop only, where it differs.
    pub service: Option<Histogram<u64>>,
    /// Responses by status code.
    statuses: Vec<u64>,
    /// Connect failures and connections dropped mid-request.
    pub transport_errors: u64,
    /// Requests with no complete answer within `--timeout`.
    pub timeouts: u64,
    /// Open loop: requests scheduled in the window that were never sent before it closed.
    pub unsent: u64,
    /// Open loop: sends that left more than [`LATE_SEND`] after their intended time.
    pub late_sends: u64,
    /// When the last recorded request finished.
    pub last_done: Option<Instant>,
}

/// An open-loop send this far behind schedule means the connection was still busy.
pub const LATE_SEND: Duration = Duration::from_millis(1);

/// How one request ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Status(u16),
    TransportError,
    Timeout,
}

impl Tally {
    pub fn new(open_loop: bool) -> Tally {
        Tally {
            latency: histogram(),
            service: open_loop.then(histogram),
            statuses: vec![0; STATUS_SLOTS],
            transport_errors: 0,
            timeouts: 0,
            unsent: 0,
            late_sends: 0,
            last_done: None,
        }
    }

    /// Record a request that ended at `done`; `since_intended` and `since_sent` are its latency
    /// from the schedule and from the wire (equal in a closed loop).
    pub fn record(&mut self, outcome: Outcome, since_intended: Duration, since_sent: Duration) {
        self.last_done = Some(Instant::now());
        match outcome {
            Outcome::Status(code) => {
                self.statuses[usize::from(code).min(STATUS_SLOTS - 1)] += 1;
                if (200..300).contains(&code) {
                    put(&mut self.latency, since_intended);
                    if let Some(service) = &mut self.service {
                        put(service, since_sent);
                    }
                }
            }
            Outcome::TransportError => self.transport_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        // Both histograms auto-resize, so adding cannot fail for lack of range.
        let _ = self.latency.add(&other.latency);
        if let (Some(mine), Some(theirs)) = (&mut self.service, &other.service) {
            let _ = mine.add(theirs);
        }
        for (mine, theirs) in self.statuses.iter_mut().zip(&other.statuses) {
            *mine += theirs;
        }
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        self.unsent += other.unsent;
        self.late_sends += other.late_sends;
        self.last_done = self.last_done.max(other.last_done);
    }

    /// Every request that ended, in any way.
    pub fn total(&self) -> u64 {
        self.statuses.iter().sum::<u64>() + self.transport_errors + self.timeouts
    }

    pub fn ok(&self) -> u64 {
        self.statuses[200..300].iter().sum()
    }

    pub fn status(&self, code: u16) -> u64 {
        self.statuses[usize::from(code).min(STATUS_SLOTS - 1)]
    }

    /// Everything that was neither 2xx nor 429.
    pub fn other_errors(&self) -> u64 {
        self.total() - self.ok() - self.status(429)
    }

    /// Non-2xx, non-429 statuses that occurred, with their counts.
    pub fn error_statuses(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let is_error = |code: usize| !(200..300).contains(&code) && code != 429;
        self.statuses
            .iter()
            .enumerate()
            .filter(move |(code, n)| **n > 0 && is_error(*code))
            .map(|(code, n)| (code, *n))
    }
}

/// 3 significant figures, auto-resizing from 1 µs: about 60 KB per connection for latencies up
/// to tens of milliseconds, growing only if slower answers are actually seen.
fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid histogram precision")
}

/// Record in µs, growing the histogram as needed; clamp only past its (hours-long) ceiling.
fn put(histogram: &mut Histogram<u64>, duration: Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    if histogram.record(micros).is_err() {
        histogram.saturating_record(micros);
    }
}
