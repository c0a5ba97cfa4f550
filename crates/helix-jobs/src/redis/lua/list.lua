-- Jobs newest id first. ARGV: prefix, state ('' any), queue ('' every queue), limit,
-- before id ('' none). Returns {now ms, then 4 per job: id, record, data, errors}.
--
-- Finished jobs are indexed by id text, so those reads are a range. The other states are indexed
-- in the order workers need; reading them looks at most SCAN members of each set (for
-- `available`, the next ones to run), which bounds an operator's read of a huge backlog.
local SCAN = 10000
local now = now_ms()
local want, only, limit, before = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out = { now }
if limit <= 0 then
  return out
end

local function newest_first(a, b)
  return a > b
end

local candidates = {}
local function keep(ids)
  local kept = {}
  for _, id in ipairs(ids) do
    if before == '' or id < before then
      kept[#kept + 1] = id
    end
  end
  if #kept > limit then
    table.sort(kept, newest_first)
    for i = #kept, limit + 1, -1 do
      kept[i] = nil
    end
  end
  for _, id in ipairs(kept) do
    candidates[#candidates + 1] = id
  end
end

local below = '+'
if before ~= '' then
  below = '(' .. before
end
local function by_id(set)
  keep(redis.call('ZREVRANGEBYLEX', set, below, '-', 'LIMIT', 0, limit))
end

local function not_due(set)
  keep(redis.call('ZRANGEBYSCORE', set, '(' .. int(now), '+inf', 'LIMIT', 0, SCAN))
end

local function collect(queue, state)
  if state == 'completed' or state == 'failed' or state == 'cancelled' then
    by_id(queue_key(queue, state))
  elseif state == 'running' then
    -- Leases end before +inf; the one member that does not is the set's keeper (see fetch).
    keep(redis.call('ZRANGEBYSCORE', queue_key(queue, state), '-inf', '(+inf', 'LIMIT', 0, SCAN))
  elseif state == 'available' then
    keep(redis.call('ZRANGE', queue_key(queue, state), 0, SCAN - 1))
    -- Due scheduled and retryable jobs read as available (see backend.rs).
    keep(redis.call('ZRANGEBYSCORE', queue_key(queue, 'scheduled'), '-inf', int(now), 'LIMIT', 0, SCAN))
    keep(redis.call('ZRANGEBYSCORE', queue_key(queue, 'retryable'), '-inf', int(now), 'LIMIT', 0, SCAN))
  else
    not_due(queue_key(queue, state))
  end
end

local queues = { only }
if only == '' then
  queues = redis.call('SMEMBERS', P .. 'jobs:queues')
end
local states = { want }
if want == '' then
  states = { 'scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled' }
end
for _, queue in ipairs(queues) do
  for _, state in ipairs(states) do
    collect(queue, state)
  end
end

table.sort(candidates, newest_first)
local chosen = {}
for _, id in ipairs(candidates) do
  if #chosen >= limit then
    break
  end
  if id ~= chosen[#chosen] then
    chosen[#chosen + 1] = id
  end
end
if #chosen == 0 then
  return out
end
local records = hmget(STATE, chosen)
local data = hmget(DATA, chosen)
local errors = hmget(ERRORS, chosen)
for i, id in ipairs(chosen) do
  if records[i] then
    out[#out + 1] = id
    out[#out + 1] = records[i]
    out[#out + 1] = data[i]
    out[#out + 1] = errors[i]
  end
end
return out
