-- Add jobs. ARGV: prefix, then groups of jobs that share their queue and options: queue,
-- priority, delay ms, max_attempts (-1 for the queue's default), count, then `count` times:
-- id, data, unique ('' for none, else `<window ms>:<key>`).
-- Returns per job '' when it was added, or the id of the job holding its unique key.
--
-- Everything but the id and data is the same across a group, so its record and score are made
-- once; the jobs are then written with one HSET per hash and one ZADD per set.
local now = now_ms()
local out, count_out = {}, 0
local states, data, n = {}, {}, 0
local indexes = {}
-- Queues that got a job: each is registered and woken once per call. Scheduled jobs wake too
-- (the contract says enqueues wake; a worker that looks finds nothing yet and sleeps again).
local woken = {}
local b = 2
while b <= #ARGV do
  local queue, priority, delay = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local max_attempts, count = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  b = b + 5
  local state, run_at, set, score = AVAILABLE, now, 'available', available_score(priority, now)
  if delay > 0 then
    run_at = math.min(now + delay, MAX_RUN_AT)
    state, set, score = SCHEDULED, 'scheduled', int(run_at)
  end
  local record = pack_record(state, 0, 0, priority, run_at, now, now, 0, 0, max_attempts, queue, '')
  local key = queue_key(queue, set)
  local index = indexes[key]
  if not index then
    index = {}
    indexes[key] = index
  end
  for _ = 1, count do
    local id, unique = ARGV[b], ARGV[b + 2]
    local holder = false
    if unique ~= '' then
      local window, name = string.match(unique, '^(%d+):(.*)$')
      local lock = P .. 'jobs:unique:' .. name
      if not redis.call('SET', lock, id, 'NX', 'PX', window) then
        holder = redis.call('GET', lock)
      end
    end
    count_out = count_out + 1
    if holder then
      out[count_out] = holder
    else
      n = n + 2
      states[n - 1], states[n] = id, record
      data[n - 1], data[n] = id, ARGV[b + 1]
      index[#index + 1] = score
      index[#index + 1] = id
      woken[queue] = true
      out[count_out] = ''
    end
    b = b + 3
  end
end
send('HSET', STATE, states)
send('HSET', DATA, data)
for key, index in pairs(indexes) do
  send('ZADD', key, index)
end
for queue in pairs(woken) do
  redis.call('SADD', P .. 'jobs:queues', queue)
  redis.call('PUBLISH', P .. 'jobs:wake', queue)
end
return out
