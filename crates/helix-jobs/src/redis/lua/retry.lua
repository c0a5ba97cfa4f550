-- Make a failed, cancelled, retryable or scheduled job available now with no attempts used.
-- ARGV: prefix, id. Returns {'missing'}, {'conflict', state} or
-- {'ok', now ms, record, data, errors}.
local now = now_ms()
local id = ARGV[2]
local st, _, tk, pr, _, ca, _, lu, _, ma, q, w = unpack_record(redis.call('HGET', STATE, id))
if not st then
  return { 'missing' }
end
if st == AVAILABLE or st == RUNNING or st == COMPLETED then
  return { 'conflict', NAMES[st] }
end
local record = pack_record(AVAILABLE, 0, tk, pr, now, ca, now, lu, 0, ma, q, w)
redis.call('ZREM', queue_key(q, NAMES[st]), id)
redis.call('HSET', STATE, id, record)
redis.call('ZADD', queue_key(q, 'available'), available_score(pr, now), id)
redis.call('PUBLISH', P .. 'jobs:wake', q)
return { 'ok', now, record, redis.call('HGET', DATA, id), redis.call('HGET', ERRORS, id) }
