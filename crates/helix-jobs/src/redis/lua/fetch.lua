-- Lease jobs of one queue. ARGV: prefix, queue, max, lease ms, worker, default max attempts.
-- Returns 5 values per job: id, data, attempt, max_attempts (-1: the default), token.
local now = now_ms()
local now_s = int(now)
local queue = ARGV[2]
local available = queue_key(queue, 'available')
local running = queue_key(queue, 'running')
local totals = queue_key(queue, 'totals')

-- Due jobs join the available ones at their run_at, so they rank by when they became due.
for _, state in ipairs({ SCHEDULED, RETRYABLE }) do
  local set = queue_key(queue, NAMES[state])
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', now_s, 'LIMIT', 0, SWEEP_LIMIT)
  if #due > 0 then
    local records = hmget(STATE, due)
    for i, id in ipairs(due) do
      zrem_later(set, id)
      local st, at, tk, pr, ra, ca, ua, lu, fa, ma, q, w = unpack_record(records[i])
      if st then
        hset_later(STATE, id, pack_record(AVAILABLE, at, tk, pr, ra, ca, ua, lu, fa, ma, q, w))
        zadd_later(available, available_score(pr, ra), id)
      end
    end
  end
end

-- Leases that ended: the attempt failed; run again (in the job's old place in line: its run_at
-- stays), or fail for good on the last attempt.
local expired = redis.call('ZRANGEBYSCORE', running, '-inf', now_s, 'LIMIT', 0, SWEEP_LIMIT)
if #expired > 0 then
  local records = hmget(STATE, expired)
  for i, id in ipairs(expired) do
    zrem_later(running, id)
    local st, at, tk, pr, ra, ca, _, lu, fa, ma, q, w = unpack_record(records[i])
    if st then
      hset_later(ERRORS, id, with_error(id, at, now, '"lease expired"'))
      incr_later(totals, 'lease_expiries_total')
      if at >= (ma >= 0 and ma or tonumber(ARGV[6])) then
        hset_later(STATE, id, pack_record(FAILED, at, tk, pr, ra, ca, now, lu, now, ma, q, w))
        zadd_later(queue_key(queue, 'failed'), FINISHED, id)
        incr_later(totals, 'failed_total')
      else
        hset_later(STATE, id, pack_record(AVAILABLE, at, tk, pr, ra, ca, now, lu, fa, ma, q, w))
        zadd_later(available, available_score(pr, ra), id)
      end
    end
  end
end
flush()

local max = tonumber(ARGV[3])
if max <= 0 then
  return {}
end
local ids = redis.call('ZRANGE', available, 0, max - 1)
if #ids == 0 then
  return {}
end
send('ZREM', available, ids)
local deadline = now + tonumber(ARGV[4])
local deadline_s = int(deadline)
local worker = ARGV[5]
local records = hmget(STATE, ids)
local data = hmget(DATA, ids)
local states, leases, n = {}, {}, 0
local out, o = {}, 0
for i = 1, #ids do
  local id = ids[i]
  local st, at, tk, pr, ra, ca, _, _, fa, ma, q = unpack_record(records[i])
  if st then
    at, tk = at + 1, tk + 1
    n = n + 2
    states[n - 1] = id
    states[n] = pack_record(RUNNING, at, tk, pr, ra, ca, now, deadline, fa, ma, q, worker)
    leases[n - 1], leases[n] = deadline_s, id
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = id, data[i], at, ma, tk
    o = o + 5
  end
end
-- Why a member that never expires: it keeps the set from being deleted whenever its last lease
-- ends, and so from being rebuilt in Redis's small-set encoding, whose inserts scan the set.
leases[n + 1], leases[n + 2] = '+inf', ''
send('HSET', STATE, states)
send('ZADD', running, leases)
return out
