-- Record how attempts ended. ARGV: prefix, then per result: id, token, outcome, and for
-- outcome 'r' (retry) the error as a JSON string literal and the delay ms, for 'f' (fail) the
-- error; 'c' (completed) has nothing more.
-- Returns 1 or 0 per result (0: the token no longer holds the job; nothing changed).
local now = now_ms()
local ids, at_arg = {}, {}
local b = 2
while b <= #ARGV do
  ids[#ids + 1], at_arg[#ids + 1] = ARGV[b], b
  local outcome = ARGV[b + 2]
  if outcome == 'c' then
    b = b + 3
  elseif outcome == 'r' then
    b = b + 5
  else
    b = b + 4
  end
end
local records = hmget(STATE, ids)

-- Per queue: the leases to end and what to index, sent once per queue at the end.
local queues = {}
local function per_queue(q)
  local lists = queues[q]
  if not lists then
    lists = { running = {}, completed = {}, failed = {}, retryable = {}, done = 0, dead = 0 }
    queues[q] = lists
  end
  return lists
end

-- A ticket named twice sees its own first change (and is refused the second time).
local latest = {}
local states, n = {}, 0
local out = {}
local current, lists = nil, nil
for i = 1, #ids do
  local id, b = ids[i], at_arg[i]
  local st, at, tk, pr, ra, ca, _, lu, _, ma, q, w = unpack_record(latest[id] or records[i])
  if st == RUNNING and tk == tonumber(ARGV[b + 1]) then
    if q ~= current then
      current, lists = q, per_queue(q)
    end
    local outcome = ARGV[b + 2]
    local record
    lists.running[#lists.running + 1] = id
    if outcome == 'c' then
      record = pack_record(COMPLETED, at, tk, pr, ra, ca, now, lu, now, ma, q, w)
      local done = lists.completed
      done[#done + 1] = FINISHED
      done[#done + 1] = id
      lists.done = lists.done + 1
    elseif outcome == 'r' then
      local run_at = math.min(now + tonumber(ARGV[b + 4]), MAX_RUN_AT)
      record = pack_record(RETRYABLE, at, tk, pr, run_at, ca, now, lu, 0, ma, q, w)
      hset_later(ERRORS, id, with_error(id, at, now, ARGV[b + 3]))
      local waiting = lists.retryable
      waiting[#waiting + 1] = int(run_at)
      waiting[#waiting + 1] = id
    else
      record = pack_record(FAILED, at, tk, pr, ra, ca, now, lu, now, ma, q, w)
      hset_later(ERRORS, id, with_error(id, at, now, ARGV[b + 3]))
      local dead = lists.failed
      dead[#dead + 1] = FINISHED
      dead[#dead + 1] = id
      lists.dead = lists.dead + 1
    end
    latest[id] = record
    n = n + 2
    states[n - 1], states[n] = id, record
    out[i] = 1
  else
    out[i] = 0
  end
end
send('HSET', STATE, states)
for q, lists in pairs(queues) do
  send('ZREM', queue_key(q, 'running'), lists.running)
  send('ZADD', queue_key(q, 'completed'), lists.completed)
  send('ZADD', queue_key(q, 'failed'), lists.failed)
  send('ZADD', queue_key(q, 'retryable'), lists.retryable)
  if lists.done > 0 then
    redis.call('HINCRBY', queue_key(q, 'totals'), 'completed_total', lists.done)
  end
  if lists.dead > 0 then
    redis.call('HINCRBY', queue_key(q, 'totals'), 'failed_total', lists.dead)
  end
end
flush()
return out
