-- Counts per queue. ARGV: prefix. Returns {now ms, {queue, scheduled, available, running,
-- retryable, completed, failed, cancelled, oldest available run_at ms (-1: none),
-- completed_total, failed_total, lease_expiries_total}, ...}.
local now = now_ms()

-- The available set ranks by priority first, so its oldest job is the first of some band: hop
-- from band to band (at most 201 lookups) instead of reading the set.
local function oldest_available(queue)
  local set = queue_key(queue, 'available')
  local oldest = -1
  local from = '-inf'
  while true do
    local first = redis.call('ZRANGEBYSCORE', set, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #first == 0 then
      break
    end
    local score = tonumber(first[2])
    local band = math.floor(score / BAND)
    local run_at = score - band * BAND
    if oldest < 0 or run_at < oldest then
      oldest = run_at
    end
    from = int((band + 1) * BAND)
  end
  for _, state in ipairs({ 'scheduled', 'retryable' }) do
    local first = redis.call('ZRANGE', queue_key(queue, state), 0, 0, 'WITHSCORES')
    if #first > 0 then
      local run_at = tonumber(first[2])
      if run_at <= now and (oldest < 0 or run_at < oldest) then
        oldest = run_at
      end
    end
  end
  return oldest
end

local out = { now }
for _, queue in ipairs(redis.call('SMEMBERS', P .. 'jobs:queues')) do
  local scheduled = queue_key(queue, 'scheduled')
  local retryable = queue_key(queue, 'retryable')
  local due_scheduled = redis.call('ZCOUNT', scheduled, '-inf', int(now))
  local due_retryable = redis.call('ZCOUNT', retryable, '-inf', int(now))
  local totals = redis.call('HMGET', queue_key(queue, 'totals'), 'completed_total', 'failed_total',
    'lease_expiries_total')
  out[#out + 1] = {
    queue,
    redis.call('ZCARD', scheduled) - due_scheduled,
    redis.call('ZCARD', queue_key(queue, 'available')) + due_scheduled + due_retryable,
    redis.call('ZCOUNT', queue_key(queue, 'running'), '-inf', '(+inf'),
    redis.call('ZCARD', retryable) - due_retryable,
    redis.call('ZCARD', queue_key(queue, 'completed')),
    redis.call('ZCARD', queue_key(queue, 'failed')),
    redis.call('ZCARD', queue_key(queue, 'cancelled')),
    oldest_available(queue),
    tonumber(totals[1]) or 0,
    tonumber(totals[2]) or 0,
    tonumber(totals[3]) or 0,
  }
end
return out
