-- Writes collected per key and sent at `flush` as one command per key and kind, for the steps
-- whose jobs may belong to several queues (extend, release), the sweeps of fetch, error lists
-- and prune. (The hot loops of enqueue, fetch and finish keep their own lists.)
local zadds, zrems, hsets, incrs = {}, {}, {}, {}

local function later(lists, key, a, b)
  local list = lists[key]
  if not list then
    list = {}
    lists[key] = list
  end
  list[#list + 1] = a
  if b then
    list[#list + 1] = b
  end
end

local function zadd_later(key, score, member)
  later(zadds, key, score, member)
end

local function zrem_later(key, member)
  later(zrems, key, member)
end

local function hset_later(key, field, value)
  later(hsets, key, field, value)
end

local function incr_later(key, field)
  local fields = incrs[key]
  if not fields then
    fields = {}
    incrs[key] = fields
  end
  fields[field] = (fields[field] or 0) + 1
end

local function flush()
  for key, list in pairs(zrems) do
    send('ZREM', key, list)
  end
  for key, list in pairs(zadds) do
    send('ZADD', key, list)
  end
  for key, list in pairs(hsets) do
    send('HSET', key, list)
  end
  for key, fields in pairs(incrs) do
    for field, by in pairs(fields) do
      redis.call('HINCRBY', key, field, by)
    end
  end
  zadds, zrems, hsets, incrs = {}, {}, {}, {}
end

