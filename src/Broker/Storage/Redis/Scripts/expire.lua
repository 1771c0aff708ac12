-- Housekeeping of one partition up to now.
-- ARGV: now, channel, node, max items, default max attempts, group count, then per group: name, max attempts.
-- Returns {expired leases (flat: group, id, lease no), outcomes (flat, 6 each), retention expired, keys forgotten,
--   more (0|1)}.
local now, channel, node = ARGV[1], ARGV[2], ARGV[3]
local max, default_max = tonumber(ARGV[4]), ARGV[5]
local policies = {}
local n = tonumber(ARGV[6])
for i = 0, n - 1 do policies[ARGV[7 + 2 * i]] = ARGV[8 + 2 * i] end

local expired, outcomes, woken = {}, {}, {}
-- Leases first: an expired lease whose retention also passed is dead-lettered as expired in the same call.
for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, max)) do
  local g, id = split_member(m)
  expired[#expired + 1] = g
  expired[#expired + 1] = id
  expired[#expired + 1] = redis.call('HGET', D(g, id), 'n')
  fail(g, id, now, '1lease expired', policies[g] or default_max, now, outcomes, woken)
end

local retention = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', RETAIN, '-inf', now, 'LIMIT', 0, max)) do
  local g, id = split_member(m)
  local attempt = redis.call('HGET', D(g, id), 'a')
  local err = '1expired: retention passed before delivery'
  remove_from_backlog(g, id)
  dead_letter(g, id, 'expired', err, now)
  push_outcome(outcomes, id, g, 'D', attempt, err, '0')
  retention = retention + 1
end

local keys = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', IDEMX, '-inf', now, 'LIMIT', 0, max)) do
  redis.call('ZREM', IDEMX, key)
  redis.call('HDEL', IDEM, key)
  keys = keys + 1
end

local more = '0'
if #redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 1) > 0
    or #redis.call('ZRANGEBYSCORE', RETAIN, '-inf', now, 'LIMIT', 0, 1) > 0
    or #redis.call('ZRANGEBYSCORE', IDEMX, '-inf', now, 'LIMIT', 0, 1) > 0 then
  more = '1'
end

-- Trim the log behind the oldest event any group still has in its backlog (dead letters keep their own copy).
local floor = nil
for _, g in ipairs(redis.call('SMEMBERS', GROUPS)) do
  local first = redis.call('ZRANGE', G(g) .. ':bl', 0, 0)[1]
  if first and (floor == nil or tonumber(first) < floor) then floor = tonumber(first) end
end
if floor == nil and redis.call('EXISTS', LOG) == 1 then
  local last = redis.call('XINFO', 'STREAM', LOG)
  for i = 1, #last, 2 do
    if last[i] == 'last-generated-id' then floor = tonumber(string.match(last[i + 1], '^(%d+)')) + 1 end
  end
end
if floor then redis.call('XTRIM', LOG, 'MINID', fmt(floor) .. '-0') end

if #expired > 0 then publish(channel, node, 'x', { x = expired }) end
publish_outcomes(channel, node, outcomes, woken)
return { expired, outcomes, retention, keys, more }
