//! Discord's per-webhook rate limits, as the answers announce them: `X-RateLimit-Bucket` names
//! the bucket a webhook's requests count against, `X-RateLimit-Remaining` how many requests it
//! has left and `X-RateLimit-Reset-After` (seconds, fractional) when it fills again. A channel
//! whose bucket is exhausted waits until the reset instead of sending into a 429; a 429 blocks
//! the bucket for as long as Discord asked.
//!
//! The view is per worker process (several workers each learn the buckets from their own
//! answers, and a 429 that slips through is honoured anyway).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::Channel;

pub const BUCKET: &str = "x-ratelimit-bucket";
pub const REMAINING: &str = "x-ratelimit-remaining";
pub const RESET_AFTER: &str = "x-ratelimit-reset-after";

/// The buckets seen so far. A mutex rather than anything finer: it is held for a few map
/// operations, once or twice per message.
#[derive(Debug, Default)]
pub struct Limiter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The bucket each channel's webhook counts against, once Discord has named it.
    bucket_of: HashMap<Channel, String>,
    buckets: HashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    remaining: u64,
    reset_at: Instant,
}

impl State {
    fn key(&self, channel: Channel) -> String {
        self.bucket_of
            .get(&channel)
            .cloned()
            .unwrap_or_else(|| format!("channel:{channel}"))
    }
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The maps stay consistent whatever a panicking holder did: each update is one insert.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `None`: send now (one request of the bucket is taken); `Some(wait)`: the bucket is
    /// exhausted until then.
    pub fn acquire(&self, channel: Channel, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        let key = state.key(channel);
        let bucket = state.buckets.get_mut(&key)?;
        if now >= bucket.reset_at {
            state.buckets.remove(&key);
            return None;
        }
        if bucket.remaining == 0 {
            return Some(bucket.reset_at - now);
        }
        bucket.remaining -= 1;
        None
    }

    /// Learn from an answer's rate-limit headers (any status).
    pub fn update(&self, channel: Channel, headers: &HeaderMap, now: Instant) {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let mut state = self.lock();
        if let Some(bucket) = text(BUCKET).filter(|b| !b.is_empty()) {
            state.bucket_of.insert(channel, format!("bucket:{bucket}"));
        }
        let remaining = text(REMAINING).and_then(|v| v.parse::<u64>().ok());
        let after = text(RESET_AFTER).and_then(seconds);
        if let (Some(remaining), Some(after)) = (remaining, after) {
            let key = state.key(channel);
            state.buckets.insert(
                key,
                Bucket {
                    remaining,
                    reset_at: now + after,
                },
            );
        }
    }

    /// Nothing more for this channel's bucket until `wait` from now (a 429).
    pub fn block(&self, channel: Channel, wait: Duration, now: Instant) {
        let mut state = self.lock();
        let key = state.key(channel);
        let until = now + wait;
        let bucket = state.buckets.entry(key).or_insert(Bucket {
            remaining: 0,
            reset_at: until,
        });
        bucket.remaining = 0;
        bucket.reset_at = bucket.reset_at.max(until);
    }
}

/// Seconds as Discord writes them (`1`, `0.5`, `1.234`); at most an hour.
pub fn seconds(text: &str) -> Option<Duration> {
    let secs = text.trim().parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn an_exhausted_bucket_waits_until_its_reset() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(limiter.acquire(Channel::Alerts, t0), None, "unknown: send");
        limiter.update(
            Channel::Alerts,
            &headers(&[(BUCKET, "abc"), (REMAINING, "1"), (RESET_AFTER, "2.5")]),
            t0,
        );
        assert_eq!(limiter.acquire(Channel::Alerts, t0), None, "one left");
        let wait = limiter.acquire(Channel::Alerts, t0 + Duration::from_secs(1));
        assert_eq!(wait, Some(Duration::from_millis(1500)));
        assert_eq!(
            limiter.acquire(Channel::Alerts, t0 + Duration::from_secs(3)),
            None,
            "reset"
        );
    }

    #[test]
    fn channels_sharing_a_bucket_share_its_limit_and_others_do_not() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        let exhausted = headers(&[(BUCKET, "same"), (REMAINING, "0"), (RESET_AFTER, "1")]);
        limiter.update(Channel::Alerts, &exhausted, t0);
        limiter.update(Channel::Api, &headers(&[(BUCKET, "same")]), t0);
        assert!(limiter.acquire(Channel::Api, t0).is_some());
        assert_eq!(limiter.acquire(Channel::Heartbeat, t0), None);
    }

    #[test]
    fn a_429_blocks_the_bucket() {
        let limiter = Limiter::default();
        let t0 = Instant::now();
        limiter.block(Channel::Commands, Duration::from_secs(2), t0);
        assert_eq!(
            limiter.acquire(Channel::Commands, t0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(seconds("0.25"), Some(Duration::from_millis(250)));
        assert_eq!(seconds("-1"), None);
        assert_eq!(seconds("soon"), None);
    }
}
