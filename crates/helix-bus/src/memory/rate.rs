//! [`RateLimiter`] on the memory bus: per key, the two fixed-window counts of the sliding window
//! counter (see [`crate::rate`]), in an [`Expiring`] map so idle keys are dropped.
//!
//! Window boundaries are multiples of the window length counted from the bus's creation (an
//! `Instant` has no epoch; within one process only the alignment of windows to each other
//! matters). [`RateCounters`] takes `now` as a parameter, so the tests below drive a fake clock.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::expiring::Expiring;
use super::{lock, MemoryBus};
use crate::rate::{admits_n, check_cost, decide, window_ms, Counts};
use crate::{BusError, RateDecision, RateLimiter};

/// One key's counts: fixed window `index` (of length `window_ms`) and the one before it.
struct Pair {
    window_ms: u64,
    index: u64,
    current: u64,
    previous: u64,
}

pub(super) struct RateCounters {
    /// Where window 0 starts.
    origin: Instant,
    keys: Expiring<Pair>,
}

impl RateCounters {
    pub(super) fn new(origin: Instant) -> Self {
        Self {
            origin,
            keys: Expiring::default(),
        }
    }

    /// Count one hit at `now` (`window_ms` already checked to be at least 1).
    #[cfg(test)]
    pub(super) fn hit(
        &mut self,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: Instant,
    ) -> RateDecision {
        self.take(key, 1, limit, window_ms, now)
    }

    /// Count `cost` hits at `now`, all or none (`window_ms` and `cost` already checked).
    pub(super) fn take(
        &mut self,
        key: &str,
        cost: u64,
        limit: u64,
        window_ms: u64,
        now: Instant,
    ) -> RateDecision {
        let since = now.saturating_duration_since(self.origin).as_millis();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        let (index, elapsed_ms) = (since / window_ms, since % window_ms);
        // Roll the stored pair forward to `index`: what Redis gets by reading keys `index` and
        // `index - 1`, the older ones having expired.
        let (previous, current) = match self.keys.get(key, now) {
            Some(p) if p.window_ms == window_ms && p.index == index => (p.previous, p.current),
            Some(p) if p.window_ms == window_ms && p.index + 1 == index => (p.current, 0),
            _ => (0, 0),
        };
        let before = Counts {
            previous,
            current,
            elapsed_ms,
        };
        let allowed = admits_n(before, cost, limit, window_ms);
        let after = Counts {
            current: current + if allowed { cost } else { 0 },
            ..before
        };
        if allowed {
            // Worthless once window `index + 1` is over, when it would read as zero anyway.
            let useful_for = Duration::from_millis(2 * window_ms - elapsed_ms);
            let pair = Pair {
                window_ms,
                index,
                current: after.current,
                previous,
            };
            let expires = now.checked_add(useful_for);
            self.keys.insert(key.to_owned(), pair, expires, now);
        }
        decide(after, allowed, limit, window_ms)
    }

    pub(super) fn clear(&mut self) {
        self.keys.clear();
    }
}

#[async_trait]
impl RateLimiter for MemoryBus {
    async fn take(
        &self,
        key: &str,
        cost: u64,
        limit: u64,
        window: Duration,
    ) -> Result<RateDecision, BusError> {
        self.check_open()?;
        let window_ms = window_ms(key, window)?;
        check_cost(cost)?;
        let now = Instant::now();
        Ok(lock(&self.rates).take(key, cost, limit, window_ms, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1000;

    /// A fake clock: instants `ms` milliseconds after a fixed origin.
    struct Clock(Instant);

    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn setup() -> (Clock, RateCounters) {
        let origin = Instant::now();
        (Clock(origin), RateCounters::new(origin))
    }

    /// How many of `n` hits at `now` are allowed.
    fn burst(rates: &mut RateCounters, key: &str, limit: u64, n: u64, now: Instant) -> u64 {
        (0..n)
            .filter(|_| rates.hit(key, limit, W, now).allowed)
            .count() as u64
    }

    #[test]
    fn capacity_returns_gradually_after_a_boundary() {
        let (clock, mut rates) = setup();
        assert_eq!(burst(&mut rates, "k", 10, 15, clock.at(100)), 10);

        // Still in window 0: full.
        assert_eq!(burst(&mut rates, "k", 10, 5, clock.at(999)), 0);
        // 1 ms into window 1 the previous 10 weigh 9.99: nothing.
        assert_eq!(burst(&mut rates, "k", 10, 5, clock.at(1001)), 0);
        // 30 % in: they weigh 7, so 3 fit.
        assert_eq!(burst(&mut rates, "k", 10, 10, clock.at(1300)), 3);
        // 80 % in: they weigh 2 and 3 were counted: 5 more.
        assert_eq!(burst(&mut rates, "k", 10, 10, clock.at(1800)), 5);
        // Window 2, 50 % in: window 1's 8 weigh 4.
        assert_eq!(burst(&mut rates, "k", 10, 10, clock.at(2500)), 6);
        // Two quiet windows later everything is back.
        assert_eq!(burst(&mut rates, "k", 10, 20, clock.at(4000)), 10);
    }

    #[test]
    fn denied_hits_do_not_count() {
        let (clock, mut rates) = setup();
        assert_eq!(burst(&mut rates, "k", 3, 3, clock.at(0)), 3);
        let first = rates.hit("k", 3, W, clock.at(10));
        assert_eq!(burst(&mut rates, "k", 3, 100, clock.at(10)), 0);
        let last = rates.hit("k", 3, W, clock.at(10));
        assert_eq!(first, last, "100 denied hits changed nothing");
        // Window 1 at 40 %: 3 × 0.6 = 1.8 counted, so one fits (not zero, as 100 extra would).
        assert_eq!(burst(&mut rates, "k", 3, 5, clock.at(1400)), 1);
    }

    #[test]
    fn retry_after_and_reset_after_follow_the_clock() {
        let (clock, mut rates) = setup();
        burst(&mut rates, "k", 2, 2, clock.at(250));
        let denied = rates.hit("k", 2, W, clock.at(250));
        // Boundary in 750 ms, then 2 × (1000 − e) ≤ 1000 at e = 500.
        let wait = Duration::from_millis(750 + 500);
        assert_eq!(denied.retry_after, Some(wait));
        assert_eq!(denied.reset_after, Duration::from_millis(750 + W));
        assert!(!rates.hit("k", 2, W, clock.at(250 + 1249)).allowed);
        let back = rates.hit("k", 2, W, clock.at(250 + 1250));
        assert!(back.allowed);
        assert_eq!(back.remaining, 0);
    }

    #[test]
    fn keys_and_windows_are_independent() {
        let (clock, mut rates) = setup();
        assert_eq!(burst(&mut rates, "a", 2, 5, clock.at(0)), 2);
        assert_eq!(burst(&mut rates, "b", 2, 5, clock.at(0)), 2);
        // Another window for the same key is a new count.
        assert_eq!(rates.hit("a", 2, 2 * W, clock.at(0)).remaining, 1);
    }

    #[test]
    fn idle_keys_are_dropped() {
        let (clock, mut rates) = setup();
        for i in 0..1000 {
            rates.hit(&format!("k{i}"), 5, W, clock.at(i));
        }
        assert_eq!(rates.keys.len(), 1000);
        // By window 3 every pair is worthless; the next call sweeps them.
        rates.hit("other", 5, W, clock.at(3 * W));
        assert_eq!(rates.keys.len(), 1);
    }

    #[test]
    fn limit_zero_counts_nothing() {
        let (clock, mut rates) = setup();
        let d = rates.hit("k", 0, W, clock.at(5));
        assert!(!d.allowed);
        assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO));
        assert_eq!(rates.keys.len(), 0);
    }
}
