-- What every job script starts with (after the `MAX_ERRORS` line the Rust side prepends); the
-- scripts that need them add `batch.lua` and `errors.lua`. Kept small, since every `local
-- function` here is a closure made again on each call.
--
-- ARGV[1] is always the key prefix; keys are built here from it, so the scripts address records
-- they only learn about while running (standalone Redis, not Redis Cluster).
--
-- Key layout (P = prefix, q = queue name). A job is a field named by its id in each of three
-- hashes, so a batch reads or writes all its jobs with one HMGET or HSET per hash rather than
-- with commands per job:
--   P jobs:state              hash id -> record (below): what every step reads and rewrites
--   P jobs:data               hash id -> what never changes, packed by the Rust side
--                             (timeout, unique key, kind, payload); scripts store and return it
--   P jobs:errors             hash id -> JSON array of {attempt, at (ms), error}
--   P jobs:q:<q>:available    zset, score = (100 - priority) * 2^44 + ms it became available
--   P jobs:q:<q>:scheduled    zset, score = run_at ms
--   P jobs:q:<q>:retryable    zset, score = run_at ms
--   P jobs:q:<q>:running      zset, score = lease deadline ms (plus one member '' at +inf that
--                             keeps the set, see fetch.lua)
--   P jobs:q:<q>:completed    zset, every score 0: ordered by id text, which for UUIDv7 ids
--   P jobs:q:<q>:failed       zset, same                                is creation order
--   P jobs:q:<q>:cancelled    zset, same
--   P jobs:q:<q>:totals       hash: completed_total, failed_total, lease_expiries_total
--   P jobs:queues             set of queue names
--   P jobs:unique:<key>       string: the id holding the key, PX = its window
--   channel P jobs:wake       payload = queue name
--
-- A record is binary, `struct` format RECORD below: state code, attempts, token, priority,
-- run_at, created_at, updated_at, lease_until (0: none), finished_at (0: none), max_attempts
-- (-1: the queue's default), queue, worker (each as length, bytes); times in ms. Packing or
-- unpacking one is a single C call, far cheaper per job than text patterns. `lease_until` and
-- `worker` mean something only while running.

local P = ARGV[1]
local STATE = P .. 'jobs:state'
local DATA = P .. 'jobs:data'
local ERRORS = P .. 'jobs:errors'
-- One priority band of the available score. 2^44 ms is the year 2527, and 201 bands of it stay
-- below 2^53, so every score is an exact double.
local BAND = 17592186044416
local MAX_RUN_AT = BAND - 1
-- Most due or expired jobs one fetch moves, so one call never stalls Redis.
local SWEEP_LIMIT = 1000
-- Most values one command carries (Lua's stack limit for `unpack` is about 8000).
local CHUNK = 1000

-- State codes, as records keep them, and their names (also the names of the sets that index
-- them).
local SCHEDULED, AVAILABLE, RUNNING, RETRYABLE, COMPLETED, FAILED, CANCELLED = 1, 2, 3, 4, 5, 6, 7
local NAMES = { 'scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled' }

local RECORD = '>BIdbdddddiIc0Ic0'

-- Numbers go to Redis as text made here: Redis 7.0 writes a Lua number argument with `%.17g`,
-- and `..` writes one with 14 digits. Every time and score is a whole number.
local function int(n)
  return string.format('%d', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function queue_key(queue, name)
  return P .. 'jobs:q:' .. queue .. ':' .. name
end

local function available_score(priority, run_at)
  return int((100 - priority) * BAND + run_at)
end

-- The score of every member of a finished set: members with equal scores sort by their bytes,
-- so lexicographic ranges (`ZRANGEBYLEX`) walk the ids in order.
local FINISHED = '0'

-- state, attempts, token, priority, run_at, created_at, updated_at, lease_until, finished_at,
-- max_attempts, queue, worker; nothing for a missing record.
local function unpack_record(record)
  if not record then
    return nil
  end
  return struct.unpack(RECORD, record)
end

local function pack_record(st, at, tk, pr, ra, ca, ua, lu, fa, ma, q, w)
  return struct.pack(RECORD, st, at, tk, pr, ra, ca, ua, lu, fa, ma, #q, q, #w, w)
end

-- HMGET of many fields, in chunks; the values line up with `ids`.
local function hmget(key, ids)
  if #ids <= CHUNK then
    return redis.call('HMGET', key, unpack(ids))
  end
  local out = {}
  for i = 1, #ids, CHUNK do
    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
    for j = 1, #part do
      out[#out + 1] = part[j]
    end
  end
  return out
end

-- `command key list...`, in chunks (pairs stay whole: CHUNK is even).
local function send(command, key, list)
  for i = 1, #list, CHUNK do
    redis.call(command, key, unpack(list, i, math.min(i + CHUNK - 1, #list)))
  end
end

