-- ARGV: group, now, channel, node, count, then per item: id, lease no, kind (A|N|E|R), till, error (opt), max attempts.
-- Returns per item: {'S'} (stale) | {'C'} | {'C', outcome...} (id, group, kind, attempt, error (opt), will retry).
local g, now, channel, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local count = tonumber(ARGV[5])
local exists = redis.call('SISMEMBER', GROUPS, g) == 1
local nownum = tonumber(now)
local results, outcomes, woken = {}, {}, {}
local acked = 0
local at = 6
for i = 1, count do
  local id, lease_no, kind, till, err, max_attempts = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
  at = at + 6
  local d = D(g, id)
  local v = exists and redis.call('HMGET', d, 'st', 'n', 'u', 'a', 'k') or {}
  if not exists or v[1] ~= 'L' or v[2] ~= lease_no or tonumber(v[3]) <= nownum then
    results[i] = { 'S' }
  else
    local mark = #outcomes
    if kind == 'A' and not v[5] then
      -- The common case, an ack without ordering key: three commands.
      redis.call('ZREM', LEASES, member(g, id))
      redis.call('ZREM', G(g) .. ':bl', id)
      redis.call('DEL', d)
      acked = acked + 1
      push_outcome(outcomes, id, g, 'H', v[4], '0', '0')
    elseif kind == 'A' then
      remove_from_backlog(g, id)
      redis.call('DEL', d)
      push_outcome(outcomes, id, g, 'H', v[4], '0', '0')
    elseif kind == 'N' then
      fail(g, id, till, err, max_attempts, now, outcomes, woken)
    elseif kind == 'E' then
      redis.call('HSET', d, 'u', till)
      redis.call('ZADD', LEASES, till, member(g, id))
    else
      remove_from_backlog(g, id)
      dead_letter(g, id, 'rejected', err, now)
      push_outcome(outcomes, id, g, 'D', v[4], err, '0')
    end
    local r = { 'C' }
    for j = mark + 1, #outcomes do r[#r + 1] = outcomes[j] end
    results[i] = r
  end
end
if acked > 0 then redis.call('HINCRBY', INFLIGHT, g, -acked) end
publish_outcomes(channel, node, outcomes, woken)
return results
