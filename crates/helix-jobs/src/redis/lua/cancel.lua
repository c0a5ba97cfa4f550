-- Cancel a job that has not finished. ARGV: prefix, id. Returns {'missing'},
-- {'conflict', state} or {'ok', now ms, record, data, errors}.
local now = now_ms()
local id = ARGV[2]
local st, at, tk, pr, ra, ca, _, lu, _, ma, q, w = unpack_record(redis.call('HGET', STATE, id))
if not st then
  return { 'missing' }
end
if st >= COMPLETED then
  return { 'conflict', NAMES[st] }
end
-- A running job's lease is revoked with its state: the token check refuses its worker's reports.
local record = pack_record(CANCELLED, at, tk, pr, ra, ca, now, lu, now, ma, q, w)
redis.call('ZREM', queue_key(q, NAMES[st]), id)
redis.call('HSET', STATE, id, record)
redis.call('ZADD', queue_key(q, 'cancelled'), FINISHED, id)
return { 'ok', now, record, redis.call('HGET', DATA, id), redis.call('HGET', ERRORS, id) }
