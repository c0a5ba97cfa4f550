//! [`RateLimiter`] on Redis: the sliding window counter of [`crate::rate`] as ONE Lua script.
//!
//! Keys of rate key `k`: `{prefix}helix:rl:{k}:<window index>`, one integer count per fixed
//! window, where the index is `server time (ms) / window`. The `{k}` hash tag puts every window
//! of one key in one Redis Cluster slot; the script receives the part before the index as its
//! only key and appends the index itself (it depends on the server's `TIME`, so the client cannot
//! name the keys), which Redis Cluster accepts as the keys are in the declared key's slot. Each
//! window's key expires two windows after its last hit, when it no longer counts.
//!
//! Why one script: reading both counts, deciding and counting must be one atomic step, or two
//! instances could both take the last slot. Why `TIME`: every instance then agrees on the
//! windows, however skewed the app servers' clocks are. The script only decides and counts;
//! `remaining`, `reset_after` and `retry_after` are computed by [`crate::rate::decide`] from the
//! counts it returns, the same code as on the memory bus.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use super::RedisBus;
use crate::rate::{check_cost, decide, window_ms, Counts};
use crate::{BusError, RateDecision, RateLimiter};

/// KEYS: base (`…:rl:{k}`). ARGV: window ms, limit, cost. Returns {allowed 0/1, elapsed ms, previous
/// count, current count (this hit included when allowed)}. The admission test is
/// `crate::rate::admits`, multiplied through by the window as there.
const HIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local index = math.floor(now / window)
local elapsed = now - index * window
-- Guard against a division rounded across a boundary (doubles): keep 0 <= elapsed < window.
if elapsed < 0 then index = index - 1; elapsed = elapsed + window end
if elapsed >= window then index = index + 1; elapsed = elapsed - window end
local current_key = KEYS[1] .. ':' .. string.format('%.0f', index)
local previous_key = KEYS[1] .. ':' .. string.format('%.0f', index - 1)
local current = tonumber(redis.call('GET', current_key) or '0')
local previous = tonumber(redis.call('GET', previous_key) or '0')
local allowed = 0
if limit > 0 and previous * (window - elapsed) + (current + cost) * window <= limit * window then
  current = redis.call('INCRBY', current_key, cost)
  redis.call('PEXPIRE', current_key, 2 * window)
  allowed = 1
end
return {allowed, elapsed, previous, current}
";

/// The script (loaded once per server, then run by SHA) and the key prefix.
pub(crate) struct RedisRates {
    prefix: String,
    hit: Script,
}

impl RedisRates {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            hit: Script::new(HIT),
        }
    }

    /// Run the script; (allowed, counts after the hit).
    async fn hit(
        &self,
        conn: &mut impl ConnectionLike,
        key: &str,
        cost: u64,
        limit: u64,
        window_ms: u64,
    ) -> RedisResult<(bool, Counts)> {
        let mut call = self.hit.prepare_invoke();
        call.key(format!("{}helix:rl:{{{key}}}", self.prefix));
        call.arg(window_ms).arg(limit).arg(cost);
        // Typed conversion: anything but four non-negative integers is an error, not a panic.
        let (allowed, elapsed_ms, previous, current): (u8, u64, u64, u64) =
            call.invoke_async(conn).await?;
        let counts = Counts {
            previous,
            current,
            elapsed_ms,
        };
        Ok((allowed == 1, counts))
    }
}

#[async_trait]
impl RateLimiter for RedisBus {
    async fn take(
        &self,
        key: &str,
        cost: u64,
        limit: u64,
        window: Duration,
    ) -> Result<RateDecision, BusError> {
        let mut conn = self.conn()?;
        let window_ms = window_ms(key, window)?;
        check_cost(cost)?;
        let (allowed, after) = self
            .rates
            .hit(&mut conn, key, cost, limit, window_ms)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(decide(after, allowed, limit, window_ms))
    }
}
