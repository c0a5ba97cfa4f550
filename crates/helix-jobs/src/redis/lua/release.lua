-- Give leased jobs back, available now in their old place in line, without using up their
-- attempt. ARGV: prefix, then id, token per ticket. Returns 1 or 0 per ticket.
local now = now_ms()
local ids = {}
for b = 2, #ARGV - 1, 2 do
  ids[#ids + 1] = ARGV[b]
end
local records = hmget(STATE, ids)
local latest = {}
local woken = {}
local out = {}
for i, id in ipairs(ids) do
  local st, at, tk, pr, ra, ca, _, lu, fa, ma, q, w = unpack_record(latest[id] or records[i])
  if st == RUNNING and tk == tonumber(ARGV[2 * i + 1]) then
    local attempts = math.max(at - 1, 0)
    local record = pack_record(AVAILABLE, attempts, tk, pr, ra, ca, now, lu, fa, ma, q, w)
    latest[id] = record
    hset_later(STATE, id, record)
    zrem_later(queue_key(q, 'running'), id)
    zadd_later(queue_key(q, 'available'), available_score(pr, ra), id)
    woken[q] = true
    out[i] = 1
  else
    out[i] = 0
  end
end
flush()
for queue in pairs(woken) do
  redis.call('PUBLISH', P .. 'jobs:wake', queue)
end
return out
