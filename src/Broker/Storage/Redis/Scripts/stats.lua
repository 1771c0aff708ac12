-- ARGV: groups... Returns per group: backlog, in flight, dead letters, oldest backlog event's raised at ('' = none).
local results = {}
for i = 1, #ARGV do
  local g = ARGV[i]
  local oldest = ''
  local first = redis.call('ZRANGE', G(g) .. ':bl', 0, 0)[1]
  if first then
    local _, _, _, _, raised = read_event(g, first)
    oldest = raised
  end
  results[#results + 1] = {
    redis.call('ZCARD', G(g) .. ':bl'),
    tonumber(redis.call('HGET', INFLIGHT, g) or '0'),
    redis.call('ZCARD', G(g) .. ':dl'),
    oldest,
  }
end
return results
