//! The durable job queue on Redis: key layout and the Lua scripts that make every step atomic.
//!
//! Keys of queue `q` (all share the `{q}` hash tag, so one queue lives in one Redis Cluster
//! slot and a script may touch all of them):
//! - `{prefix}helix:q:{q}:job:<id>` hash: `payload`, `attempts`, `token`
//! - `{prefix}helix:q:{q}:ready` list, oldest first
//! - `{prefix}helix:q:{q}:delayed` zset, score = due time (ms, Redis clock)
//! - `{prefix}helix:q:{q}:leased` zset, score = lease deadline (ms, Redis clock)
//!
//! Every script reads the time with `TIME` on the server, so clients with skewed clocks agree.
//! `reserve` also reaches the job hash through a key prefix passed as an argument; it is in the
//! same slot, which Redis Cluster accepts for scripts without `allow-cross-slot-keys`.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use crate::QueueStats;

/// Milliseconds since the epoch on the Redis server: `now_ms` rounds down (to test what is due),
/// `due_ms` rounds up, so that a delay or lease measured from it is never cut short by rounding.
const NOW_MS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function due_ms(after)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000) + after
end
";

/// KEYS: job, ready, delayed. ARGV: id, payload, delay ms.
const ENQUEUE: &str = r"
redis.call('HSET', KEYS[1], 'payload', ARGV[2], 'attempts', 0, 'token', 0)
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[3], due_ms(delay), ARGV[1])
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return 1
";

/// KEYS: ready, delayed, leased. ARGV: lease ms, job key prefix.
/// Returns nil or {id, payload, token, attempt}.
const RESERVE: &str = r"
local now = now_ms()
local function reclaim(zset)
  local ids = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    redis.call('ZREM', zset, id)
    redis.call('RPUSH', KEYS[1], id)
  end
end
reclaim(KEYS[2])
reclaim(KEYS[3])
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return false end
  local job = ARGV[2] .. id
  if redis.call('EXISTS', job) == 1 then
    local token = redis.call('HINCRBY', job, 'token', 1)
    local attempt = redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('ZADD', KEYS[3], due_ms(tonumber(ARGV[1])), id)
    return {id, redis.call('HGET', job, 'payload'), token, attempt}
  end
end
";

/// The job is still leased and `token` is current. KEYS: leased, job. ARGV: id, token.
const HOLDS_LEASE: &str = r"
local function holds_lease()
  return redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('HGET', KEYS[2], 'token') == ARGV[2]
end
";

/// KEYS: leased, job. ARGV: id, token. Returns 1, or 0 when the lease was lost.
const ACK: &str = r"
if not holds_lease() then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
";

/// KEYS: leased, job, ready, delayed. ARGV: id, token, delay ms. Returns 1 or 0 (lease lost).
const RELEASE: &str = r"
if not holds_lease() then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[4], due_ms(delay), ARGV[1])
else
  redis.call('RPUSH', KEYS[3], ARGV[1])
end
return 1
";

/// KEYS: ready, leased, delayed. Returns {available, leased, delayed}; a due delayed job counts
/// as available, an expired lease as leased until a reserve reclaims it.
const STATS: &str = r"
local due = redis.call('ZCOUNT', KEYS[3], '-inf', now_ms())
return {redis.call('LLEN', KEYS[1]) + due, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]) - due}
";

/// A job handed out by [`RedisQueues::reserve`]: (id, payload, token, attempt).
pub(crate) type Reserved = (String, Bytes, u64, u32);

/// The scripts (loaded once per server, then run by SHA) and the key prefix.
pub(crate) struct RedisQueues {
    prefix: String,
    enqueue: Script,
    reserve: Script,
    ack: Script,
    release: Script,
    stats: Script,
}

struct Keys {
    base: String,
}

impl Keys {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }
}

impl RedisQueues {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            enqueue: Script::new(&format!("{NOW_MS}{ENQUEUE}")),
            reserve: Script::new(&format!("{NOW_MS}{RESERVE}")),
            ack: Script::new(&format!("{HOLDS_LEASE}{ACK}")),
            release: Script::new(&format!("{NOW_MS}{HOLDS_LEASE}{RELEASE}")),
            stats: Script::new(&format!("{NOW_MS}{STATS}")),
        }
    }

    fn keys(&self, queue: &str) -> Keys {
        Keys {
            base: format!("{}helix:q:{{{queue}}}:", self.prefix),
        }
    }

    pub(crate) async fn enqueue(
        &self,
        conn: &mut impl ConnectionLike,
        queue: &str,
        id: &str,
        payload: &[u8],
        delay: Duration,
    ) -> RedisResult<()> {
        let k = self.keys(queue);
        let mut call = self.enqueue.prepare_invoke();
        call.key(k.job(id))
            .key(k.key("ready"))
            .key(k.key("delayed"));
        call.arg(id).arg(payload).arg(millis(delay));
        call.invoke_async(conn).await
    }

    pub(crate) async fn reserve(
        &self,
        conn: &mut impl ConnectionLike,
        queue: &str,
        lease: Duration,
    ) -> RedisResult<Option<Reserved>> {
        let k = self.keys(queue);
        let mut call = self.reserve.prepare_invoke();
        call.key(k.key("ready"))
            .key(k.key("delayed"))
            .key(k.key("leased"));
        call.arg(millis(lease)).arg(k.job(""));
        call.invoke_async(conn).await
    }

    /// True when acknowledged, false when the lease was lost.
    pub(crate) async fn ack(
        &self,
        conn: &mut impl ConnectionLike,
        queue: &str,
        id: &str,
        token: u64,
    ) -> RedisResult<bool> {
        let k = self.keys(queue);
        let mut call = self.ack.prepare_invoke();
        call.key(k.key("leased")).key(k.job(id)).arg(id).arg(token);
        call.invoke_async(conn).await
    }

    /// True when released, false when the lease was lost.
    pub(crate) async fn release(
        &self,
        conn: &mut impl ConnectionLike,
        queue: &str,
        id: &str,
        token: u64,
        delay: Duration,
    ) -> RedisResult<bool> {
        let k = self.keys(queue);
        let mut call = self.release.prepare_invoke();
        call.key(k.key("leased")).key(k.job(id));
        call.key(k.key("ready")).key(k.key("delayed"));
        call.arg(id).arg(token).arg(millis(delay));
        call.invoke_async(conn).await
    }

    pub(crate) async fn stats(
        &self,
        conn: &mut impl ConnectionLike,
        queue: &str,
    ) -> RedisResult<QueueStats> {
        let k = self.keys(queue);
        let mut call = self.stats.prepare_invoke();
        call.key(k.key("ready"))
            .key(k.key("leased"))
            .key(k.key("delayed"));
        let (available, leased, delayed) = call.invoke_async(conn).await?;
        Ok(QueueStats {
            available,
            leased,
            delayed,
        })
    }
}

/// Whole milliseconds, saturating (a delay of centuries is still "later").
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}
