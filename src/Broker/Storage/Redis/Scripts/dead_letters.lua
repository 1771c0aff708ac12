-- ARGV: group, after id, limit. Returns per dead letter: id, label, payload, ordering key (opt), source (opt),
-- raised at, attempts, last error (opt), reason, dead-lettered at.
local g, after, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local result = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', G(g) .. ':dl', '(' .. after, '+inf', 'LIMIT', 0, limit)) do
  local v = redis.call('HMGET', D(g, id), 'l', 'p', 'k', 's', 'ra', 'a', 'e', 'dr', 'dt')
  local r = result
  r[#r + 1] = id; r[#r + 1] = v[1]; r[#r + 1] = v[2]; r[#r + 1] = opt(v[3]); r[#r + 1] = opt(v[4])
  r[#r + 1] = v[5]; r[#r + 1] = v[6]; r[#r + 1] = opt(v[7]); r[#r + 1] = v[8]; r[#r + 1] = v[9]
end
return result
