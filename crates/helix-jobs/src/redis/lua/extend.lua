-- Extend leases. ARGV: prefix, lease ms, then id, token per ticket. Returns 1 or 0 per ticket.
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local deadline_s = int(deadline)
local ids = {}
for b = 3, #ARGV - 1, 2 do
  ids[#ids + 1] = ARGV[b]
end
local records = hmget(STATE, ids)
-- A ticket named twice sees its own first change.
local latest = {}
local out = {}
for i, id in ipairs(ids) do
  local st, at, tk, pr, ra, ca, _, _, fa, ma, q, w = unpack_record(latest[id] or records[i])
  if st == RUNNING and tk == tonumber(ARGV[2 * i + 2]) then
    local record = pack_record(st, at, tk, pr, ra, ca, now, deadline, fa, ma, q, w)
    latest[id] = record
    hset_later(STATE, id, record)
    zadd_later(queue_key(q, 'running'), deadline_s, id)
    out[i] = 1
  else
    out[i] = 0
  end
end
flush()
return out
