//! How long a failed attempt waits before the next: exponential with jitter, capped.

use std::time::Duration;

use rand::Rng;

/// `base · 2^(attempt-1)`, capped at `max`, then spread by ±`jitter` (a fraction) so jobs that
/// failed together do not all come back together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(40);
        let raw = self.base.as_secs_f64() * 2f64.powi(doublings as i32);
        let capped = raw.min(self.max.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            rand::thread_rng().gen_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        Duration::from_secs_f64((capped * (1.0 + spread)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_within_jitter() {
        let b = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
            jitter: 0.2,
        };
        for _ in 0..200 {
            let first = b.delay(1).as_secs_f64();
            assert!((1.6..=2.4).contains(&first), "{first}");
            let third = b.delay(3).as_secs_f64();
            assert!((6.4..=9.6).contains(&third), "{third}");
            let late = b.delay(30).as_secs_f64();
            assert!((48.0..=72.0).contains(&late), "{late}");
        }
        let exact = Backoff { jitter: 0.0, ..b };
        assert_eq!(exact.delay(2), Duration::from_secs(4));
        assert_eq!(exact.delay(u32::MAX), Duration::from_secs(60));
    }
}
