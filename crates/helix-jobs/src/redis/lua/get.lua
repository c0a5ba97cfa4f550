-- One job. ARGV: prefix, id. Returns {now ms, record, data, errors} (nil when absent).
local id = ARGV[2]
return { now_ms(), redis.call('HGET', STATE, id), redis.call('HGET', DATA, id),
  redis.call('HGET', ERRORS, id) }
