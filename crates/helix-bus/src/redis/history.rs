//! [`History`] on Redis: per channel a hash `{prefix}helix:hist:{<channel>}:m` (epoch, last
//! offset) and a list `…:l` of envelopes, oldest first; one Lua script per call.
//!
//! Why scripts: taking the next offset, keeping the envelope and publishing it must be one step,
//! or two instances appending at once could publish offsets out of order. Why `TIME`: every
//! instance stamps and ages entries on one clock. The list is trimmed to the retained count on
//! every append and expires `max_age` after the last one; the hash lives [`META_TTL`] after the
//! last append, so offsets do not restart while clients may still hold them.

use async_trait::async_trait;
use bytes::Bytes;
use redis::{Script, Value};

use super::RedisBus;
use crate::history::{decide, new_epoch, Envelope, Position, Replay, Retention, Since, META_TTL};
use crate::{BusError, History};

/// KEYS: meta, log. ARGV: wire channel, data, epoch if the channel has none, max messages, max
/// age ms, meta TTL ms. Returns {epoch, offset}.
const APPEND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
local envelope = 'h1 ' .. epoch .. ' ' .. string.format('%.0f', offset) .. ' ' ..
  string.format('%.0f', now) .. '\n' .. ARGV[2]
redis.call('RPUSH', KEYS[2], envelope)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[1], envelope)
return {epoch, offset}
";

/// KEYS: meta, log. ARGV: since offset. Returns {epoch, last, now ms, first kept offset,
/// envelopes after since}; epoch is empty when the channel has no log.
const REPLAY: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'', 0, now, 1, {}} end
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local len = redis.call('LLEN', KEYS[2])
local first = last - len + 1
local from = tonumber(ARGV[1]) + 1
if from > last or from < first then return {epoch, last, now, first, {}} end
return {epoch, last, now, first, redis.call('LRANGE', KEYS[2], from - first, -1)}
";

/// The scripts (loaded once per server, then run by SHA) and the key prefix.
pub(crate) struct RedisLogs {
    prefix: String,
    append: Script,
    replay: Script,
}

impl RedisLogs {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            append: Script::new(APPEND),
            replay: Script::new(REPLAY),
        }
    }

    fn keys(&self, channel: &str) -> (String, String) {
        let base = format!("{}helix:hist:{{{channel}}}", self.prefix);
        (format!("{base}:m"), format!("{base}:l"))
    }
}

#[async_trait]
impl History for RedisBus {
    async fn append(
        &self,
        channel: &str,
        data: Bytes,
        retention: &Retention,
    ) -> Result<Position, BusError> {
        let mut conn = self.conn()?;
        let (meta, log) = self.logs.keys(channel);
        let mut call = self.logs.append.prepare_invoke();
        call.key(meta).key(log);
        call.arg(format!("{}{channel}", self.prefix))
            .arg(data.as_ref())
            .arg(new_epoch())
            .arg(retention.max_messages())
            .arg(retention.max_age_ms())
            .arg(META_TTL.as_millis() as u64);
        let (epoch, offset): (String, u64) = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Position { epoch, offset })
    }

    async fn replay(
        &self,
        channel: &str,
        since: &Since,
        retention: &Retention,
    ) -> Result<Replay, BusError> {
        let mut conn = self.conn()?;
        let (meta, log) = self.logs.keys(channel);
        let mut call = self.logs.replay.prepare_invoke();
        call.key(meta).key(log).arg(since.offset);
        let (epoch, last, now_ms, first_kept, raw): (String, u64, u64, u64, Vec<Value>) = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        let entries = raw
            .into_iter()
            .map(|value| envelope(value).ok_or_else(|| corrupt(channel)))
            .collect::<Result<Vec<_>, _>>()?;
        let head = Position {
            epoch,
            offset: last,
        };
        Ok(decide(head, since, first_kept, entries, now_ms, retention))
    }

    async fn head(&self, channel: &str) -> Result<Position, BusError> {
        let mut conn = self.conn()?;
        let (meta, _) = self.logs.keys(channel);
        let (epoch, last): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(meta)
            .arg("epoch")
            .arg("last")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Position {
            epoch: epoch.unwrap_or_default(),
            offset: last.unwrap_or(0),
        })
    }
}

fn envelope(value: Value) -> Option<Envelope> {
    match value {
        Value::BulkString(bytes) => Envelope::parse(&Bytes::from(bytes)),
        _ => None,
    }
}

fn corrupt(channel: &str) -> BusError {
    BusError::Backend(format!(
        "the history of channel {channel} holds an entry that is not an envelope"
    ))
}
