-- ARGV: id, groups... Returns per group: {} (no outcome yet) or an outcome (id, group, kind, attempt, error (opt),
-- will retry).
local id = ARGV[1]
local results = {}
for i = 2, #ARGV do
  local g = ARGV[i]
  local r = {}
  if redis.call('SISMEMBER', GROUPS, g) == 0 then
    r = { id, g, 'H', '0', '0', '0' }
  else
    local v = redis.call('HMGET', D(g, id), 'st', 'a', 'e')
    if v[1] == 'P' or v[1] == 'L' then
      if tonumber(v[2]) > 0 and v[3] then r = { id, g, 'F', v[2], '1' .. v[3], '1' } end
    elseif v[1] == 'D' then
      r = { id, g, 'D', v[2], opt(v[3]), '0' }
    else
      r = { id, g, 'H', '0', '0', '0' }
    end
  end
  results[#results + 1] = r
end
return results
