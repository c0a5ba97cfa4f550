//! Rate limits shared by every process on one backend: the [`RateLimiter`] contract and the
//! arithmetic of its sliding-window counter. The memory bus runs this arithmetic as is; the Redis
//! bus runs the admission test in a Lua script (the same inequality, see `redis/rate.rs`) and
//! then `decide` here on what the script saw, so both backends answer alike.
//!
//! # The approximation: a sliding window counter
//!
//! An exact sliding window would remember the time of every request of the last `window`. The
//! sliding window counter keeps two numbers per key instead: the count of the current fixed window
//! (`[k·window, (k+1)·window)` on the backend's clock) and the count of the previous one. It
//! assumes the previous window's requests were spread evenly over it, so the share of them still
//! inside the sliding window `(now − window, now]` is `1 − elapsed/window`, where `elapsed` is how
//! far `now` is into the current fixed window:
//!
//! ```text
//! estimate = previous × (1 − elapsed/window) + current
//! ```
//!
//! A hit is allowed when `estimate + 1 ≤ limit` and then counts in `current`. A denied hit does
//! not count, so a client that keeps hammering a closed limit does not prolong its own ban.
//!
//! What this means in practice:
//! - capacity comes back gradually as the previous window's weight fades, never all at once at a
//!   window boundary (the flaw of a plain fixed window, which lets `2 × limit` through around a
//!   boundary);
//! - the estimate is exact when requests are spread evenly, and off when the previous window's
//!   requests were bunched: bunched at its end they are under-counted (a few more requests get
//!   through than an exact sliding log would allow), bunched at its start they are over-counted;
//! - no count ever exceeds `limit`, so the estimate falls by at most `limit` per `window`: after
//!   a denial, fewer than `limit / 4 + 1` hits get through in the next quarter window;
//! - two counters per key, one atomic step per hit (one script on Redis).
//!
//! The arithmetic is integer, on whole milliseconds, with the inequality multiplied through by
//! `window`: `previous × (window − elapsed) + (current + 1) × window ≤ limit × window`. Lua
//! numbers are doubles, so on Redis it is exact while `limit × window` (in ms) stays below 2⁵³
//! (a limit of a million per day is 8.6 × 10¹³).

use std::time::Duration;

use async_trait::async_trait;

use crate::BusError;

/// The longest window accepted: keeps every product of the arithmetic far inside what Lua's
/// doubles hold exactly, and Redis's `PEXPIRE` (two windows) far from overflowing.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The answer to one [`RateLimiter::hit`], with what the `RateLimit-*` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether this hit was allowed (and counted).
    pub allowed: bool,
    /// The limit the hit was counted against.
    pub limit: u64,
    /// How many more hits would be allowed right now; 0 when denied.
    pub remaining: u64,
    /// How long until the estimate has fully decayed to zero (every hit counted so far has left
    /// the sliding window), for `RateLimit-Reset`. At most two windows.
    pub reset_after: Duration,
    /// `Some` when denied: how long until one more hit would be allowed if nothing else hits the
    /// key meanwhile. Never zero.
    pub retry_after: Option<Duration>,
}

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one request against `key`: allowed while fewer than `limit` requests were counted in
    /// the sliding `window` (estimated, see the module docs). A denied hit does not count.
    ///
    /// Every process on the same backend (and prefix) shares the count of a key; on Redis the
    /// server's clock decides, so the clocks of app servers do not matter. `limit == 0` denies
    /// every hit. `window` is counted in whole milliseconds and must be from 1 ms to 366 days;
    /// `key` must not be empty. Both are [`BusError::Backend`] otherwise. Use one window per key:
    /// changing it starts a new count.
    async fn hit(&self, key: &str, limit: u64, window: Duration) -> Result<RateDecision, BusError> {
        self.take(key, 1, limit, window).await
    }

    /// Count `cost` requests at once, all or none: allowed only if all of them fit. This is how an
    /// instance leases a batch of requests to admit locally without a round trip each. A `cost`
    /// of zero is [`BusError::Backend`].
    async fn take(
        &self,
        key: &str,
        cost: u64,
        limit: u64,
        window: Duration,
    ) -> Result<RateDecision, BusError>;
}

/// Check the arguments of a hit; returns the window in whole milliseconds.
pub(crate) fn window_ms(key: &str, window: Duration) -> Result<u64, BusError> {
    // Why no empty key: on Redis the key is the hash tag that keeps both windows in one slot, and
    // an empty tag `{}` does not count as one.
    if key.is_empty() {
        return Err(BusError::Backend("rate limit key must not be empty".into()));
    }
    if window < Duration::from_millis(1) || window > MAX_WINDOW {
        return Err(BusError::Backend(format!(
            "rate limit window must be from 1 ms to 366 days, got {window:?}"
        )));
    }
    // In range by the check above, so the conversion cannot fail.
    Ok(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
}

/// One key's counters as seen at one instant, `elapsed_ms` into the current fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) previous: u64,
    pub(crate) current: u64,
    /// Below the window length.
    pub(crate) elapsed_ms: u64,
}

/// The parts of the inequality, widened so no product overflows.
struct Terms {
    limit: u128,
    window: u128,
    /// Time left in the current fixed window, at least 1.
    left: u128,
    previous: u128,
    current: u128,
}

impl Terms {
    fn new(counts: Counts, limit: u64, window_ms: u64) -> Self {
        let window = u128::from(window_ms.max(1));
        let elapsed = u128::from(counts.elapsed_ms).min(window - 1);
        Self {
            limit: u128::from(limit),
            window,
            left: window - elapsed,
            previous: u128::from(counts.previous),
            current: u128::from(counts.current),
        }
    }

    /// `estimate × window`: the previous window's weighted share plus the current count.
    fn used(&self) -> u128 {
        let previous = self.previous.saturating_mul(self.left);
        previous.saturating_add(self.current.saturating_mul(self.window))
    }

    /// `limit × window`.
    fn capacity(&self) -> u128 {
        self.limit.saturating_mul(self.window)
    }
}

/// Would one more hit fit? (The Redis script tests the same inequality.)
#[cfg(test)]
pub(crate) fn admits(counts: Counts, limit: u64, window_ms: u64) -> bool {
    admits_n(counts, 1, limit, window_ms)
}

/// Would `cost` more hits fit?
pub(crate) fn admits_n(counts: Counts, cost: u64, limit: u64, window_ms: u64) -> bool {
    let t = Terms::new(counts, limit, window_ms);
    let wanted = u128::from(cost).saturating_mul(t.window);
    limit > 0 && t.used().saturating_add(wanted) <= t.capacity()
}

/// Check a cost: zero would count nothing and admit everything.
pub(crate) fn check_cost(cost: u64) -> Result<(), BusError> {
    if cost == 0 {
        return Err(BusError::Backend(
            "rate limit cost must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The decision once the hit was (or was not) counted: `after.current` includes it if allowed.
pub(crate) fn decide(after: Counts, allowed: bool, limit: u64, window_ms: u64) -> RateDecision {
    let t = Terms::new(after, limit, window_ms);
    let remaining = t.capacity().saturating_sub(t.used()) / t.window;
    let reset = if limit == 0 {
        t.window
    } else if t.current > 0 {
        // The current count becomes the previous one at the boundary, then fades over a window.
        t.left + t.window
    } else if t.previous > 0 {
        t.left
    } else {
        0
    };
    RateDecision {
        allowed,
        limit,
        remaining: if allowed { narrow(remaining) } else { 0 },
        reset_after: millis(reset),
        retry_after: (!allowed).then(|| millis(retry_ms(&t).max(1))),
    }
}

/// After a denial, how long until one more hit fits (assuming no other hit meanwhile).
fn retry_ms(t: &Terms) -> u128 {
    if t.limit == 0 {
        // Nothing will ever fit; one window is a hint to come back later, not a promise.
        return t.window;
    }
    if t.current < t.limit {
        // The previous window's weight is in the way; it fits once the time left `r` in this
        // window satisfies `previous × r ≤ (limit − current − 1) × window`.
        let slack = (t.limit - t.current - 1).saturating_mul(t.window);
        let fits_with_left = slack.checked_div(t.previous).unwrap_or(t.window);
        t.left.saturating_sub(fits_with_left)
    } else {
        // The current window is full: wait for the boundary, where it becomes the previous one
        // (`current` then 0), and then until `current × (window − e) ≤ (limit − 1) × window`.
        let fits_with_left = (t.limit - 1).saturating_mul(t.window) / t.current;
        t.left + t.window.saturating_sub(fits_with_left)
    }
}

fn millis(ms: u128) -> Duration {
    Duration::from_millis(narrow(ms))
}

fn narrow(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1000;

    fn counts(previous: u64, current: u64, elapsed_ms: u64) -> Counts {
        Counts {
            previous,
            current,
            elapsed_ms,
        }
    }

    /// Apply one hit the way a backend does: test, count if allowed, decide.
    fn hit(before: Counts, limit: u64) -> (Counts, RateDecision) {
        let allowed = admits(before, limit, W);
        let after = Counts {
            current: before.current + u64::from(allowed),
            ..before
        };
        (after, decide(after, allowed, limit, W))
    }

    #[test]
    fn a_fresh_window_allows_exactly_the_limit() {
        let mut c = counts(0, 0, 10);
        for n in 1..=5 {
            let (after, d) = hit(c, 5);
            assert!(d.allowed, "hit {n}");
            assert_eq!(d.remaining, 5 - n);
            assert_eq!(d.retry_after, None);
            assert_eq!(d.reset_after, Duration::from_millis(2 * W - 10));
            c = after;
        }
        let (after, d) = hit(c, 5);
        assert_eq!(after, c, "a denied hit does not count");
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        // Full current window, limit 5: wait 990 ms to the boundary, then until
        // 5 × (1000 − e) ≤ 4 × 1000, i.e. e = 200.
        assert_eq!(d.retry_after, Some(Duration::from_millis(990 + 200)));
    }

    #[test]
    fn the_previous_window_fades_linearly() {
        // 10 in the previous window: at 50 % through this one, 5 still count.
        assert!(admits(counts(10, 4, 500), 10, W));
        assert!(!admits(counts(10, 5, 500), 10, W));
        let d = decide(counts(10, 5, 500), true, 10, W);
        assert_eq!(d.remaining, 0);
        // 90 % through, 1 counts: remaining = 10 − 1 − 5.
        assert_eq!(decide(counts(10, 5, 900), true, 10, W).remaining, 4);
        // Just past the boundary nearly all of it counts.
        assert!(!admits(counts(10, 0, 1), 10, W));
        assert!(admits(counts(10, 0, 100), 10, W));
    }

    #[test]
    fn retry_after_is_exactly_when_the_next_hit_fits() {
        for (previous, current, elapsed, limit) in [
            (10, 0, 0, 10),
            (10, 4, 400, 10),
            (7, 2, 100, 8),
            (3, 3, 10, 3),
            (0, 5, 0, 5),
            (1, 1, 0, 1),
            (100, 0, 1, 3),
        ] {
            let now = counts(previous, current, elapsed);
            let d = decide(now, false, limit, W);
            assert!(!admits(now, limit, W), "{now:?} should be denied");
            let wait = d.retry_after.expect("denied").as_millis() as u64;
            assert!(wait > 0);
            let at = |ms: u64| {
                // Time passes with no hits: roll the windows as the backends do.
                let t = elapsed + ms;
                match t / W {
                    0 => counts(previous, current, t),
                    1 => counts(current, 0, t - W),
                    _ => counts(0, 0, t % W),
                }
            };
            assert!(admits(at(wait), limit, W), "{now:?}: fits after {wait} ms");
            assert!(
                !admits(at(wait - 1), limit, W),
                "{now:?}: not before {wait} ms"
            );
        }
    }

    #[test]
    fn reset_after_is_when_everything_has_faded() {
        assert_eq!(
            decide(counts(4, 2, 300), true, 10, W).reset_after,
            Duration::from_millis(700 + W)
        );
        assert_eq!(
            decide(counts(4, 0, 300), false, 3, W).reset_after,
            Duration::from_millis(700)
        );
        assert_eq!(
            decide(counts(0, 0, 300), true, 3, W).reset_after,
            Duration::ZERO
        );
    }

    #[test]
    fn limit_zero_denies_everything() {
        let d = decide(counts(0, 0, 0), admits(counts(0, 0, 0), 0, W), 0, W);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Some(Duration::from_millis(W)));
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(window_ms("k", Duration::from_millis(1500)).unwrap(), 1500);
        assert_eq!(window_ms("k", Duration::from_micros(1999)).unwrap(), 1);
        for bad in [Duration::ZERO, Duration::from_micros(999), MAX_WINDOW * 2] {
            assert!(
                matches!(window_ms("k", bad), Err(BusError::Backend(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            window_ms("", Duration::from_secs(1)),
            Err(BusError::Backend(_))
        ));
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let w = window_ms("k", MAX_WINDOW).unwrap();
        let d = decide(counts(u64::MAX, u64::MAX, 5), false, u64::MAX, w);
        assert!(d.retry_after.is_some_and(|r| r > Duration::ZERO));
        assert!(admits(counts(0, 0, 0), u64::MAX, w));
        assert!(!admits(counts(u64::MAX, u64::MAX, 0), u64::MAX, w));
    }
}
