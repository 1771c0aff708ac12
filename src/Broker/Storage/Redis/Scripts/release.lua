-- ARGV: group, now, channel, node, reason, count, then per item: id, lease no, max attempts.
-- Returns the outcomes as one flat list (6 values each).
local g, now, channel, node, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local count = tonumber(ARGV[6])
local outcomes, woken = {}, {}
if redis.call('SISMEMBER', GROUPS, g) == 1 then
  local at = 7
  for _ = 1, count do
    local id, lease_no, max_attempts = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    at = at + 3
    local v = redis.call('HMGET', D(g, id), 'st', 'n')
    if v[1] == 'L' and v[2] == lease_no then
      fail(g, id, now, '1' .. reason, max_attempts, now, outcomes, woken)
    end
  end
end
publish_outcomes(channel, node, outcomes, woken)
return outcomes
