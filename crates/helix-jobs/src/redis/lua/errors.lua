-- The job's errors with one more entry, keeping the last MAX_ERRORS. `encoded` is the error as a
-- JSON string literal (quotes inside it are escaped), so the text `{"attempt":` only ever starts
-- an entry and can be searched for.
local function with_error(id, attempt, now, encoded)
  local entry = '{"attempt":' .. int(attempt) .. ',"at":' .. int(now) .. ',"error":' .. encoded .. '}'
  local errors = redis.call('HGET', ERRORS, id)
  if not errors or errors == '' then
    return '[' .. entry .. ']'
  end
  errors = string.sub(errors, 1, -2) .. ',' .. entry .. ']'
  local count, from = 0, 1
  while true do
    local at = string.find(errors, '{"attempt":', from, true)
    if not at then
      break
    end
    count = count + 1
    from = at + 1
  end
  while count > MAX_ERRORS do
    local cut = string.find(errors, ',{"attempt":', 1, true)
    errors = '[' .. string.sub(errors, cut + 1)
    count = count - 1
  end
  return errors
end
