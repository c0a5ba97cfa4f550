-- Delete finished jobs past their retention, at most about `budget` per call.
-- ARGV: prefix, completed ms, failed ms, budget. Returns {deleted, 1 when more may remain}.
--
-- The finished sets are ordered by id, whose time is never after the finish time, so only jobs
-- created before the cutoff are candidates; those that finished later stay and are skipped (the
-- LIMIT offset counts them, as deleted ones leave the set).
-- The text every UUIDv7 id made before `ms` sorts below (its first 12 hex digits).
local function id_prefix(ms)
  return string.format('%08x-%04x', math.floor(ms / 65536), ms % 65536)
end

local now = now_ms()
local budget = tonumber(ARGV[4])
local deleted = 0
local plan = {
  { 'completed', now - tonumber(ARGV[2]) },
  { 'cancelled', now - tonumber(ARGV[2]) },
  { 'failed', now - tonumber(ARGV[3]) },
}

local function forget(ids)
  for i = 1, #ids, CHUNK do
    local part = { unpack(ids, i, math.min(i + CHUNK - 1, #ids)) }
    for _, key in ipairs({ STATE, DATA, ERRORS }) do
      redis.call('HDEL', key, unpack(part))
    end
  end
end

-- True when every candidate of the set is done with, false when the budget ran out first.
local function prune_set(set, cutoff)
  local kept = 0
  local below = '(' .. id_prefix(math.max(cutoff, 0))
  while deleted < budget do
    local ids = redis.call('ZRANGEBYLEX', set, '-', below, 'LIMIT', kept, 500)
    if #ids == 0 then
      return true
    end
    local records = hmget(STATE, ids)
    local gone = {}
    for i, id in ipairs(ids) do
      local st, _, _, _, _, _, _, _, finished = unpack_record(records[i])
      if not st then
        -- An index entry without a job: nothing to count, only the entry to drop.
        zrem_later(set, id)
      elseif finished > 0 and finished < cutoff then
        zrem_later(set, id)
        gone[#gone + 1] = id
        deleted = deleted + 1
      else
        kept = kept + 1
      end
    end
    forget(gone)
    flush()
  end
  return false
end

for _, queue in ipairs(redis.call('SMEMBERS', P .. 'jobs:queues')) do
  for _, step in ipairs(plan) do
    if not prune_set(queue_key(queue, step[1]), step[2]) then
      return { deleted, 1 }
    end
  end
end
return { deleted, 0 }
