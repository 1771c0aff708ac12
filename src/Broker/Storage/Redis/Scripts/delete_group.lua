-- Removes a group from the partition, in chunks. ARGV: group, limit. Returns 1 when done, 0 when more remains.
local g, limit = ARGV[1], tonumber(ARGV[2])
redis.call('SREM', GROUPS, g)
local done = 0
for _, set in ipairs({ G(g) .. ':bl', G(g) .. ':dl' }) do
  local ids = redis.call('ZRANGE', set, 0, limit - 1)
  for _, id in ipairs(ids) do
    local d = D(g, id)
    local key = redis.call('HGET', d, 'k')
    if key then redis.call('DEL', G(g) .. ':ok:' .. key) end
    redis.call('ZREM', LEASES, member(g, id))
    redis.call('ZREM', RETAIN, member(g, id))
    redis.call('DEL', d)
    redis.call('ZREM', set, id)
    done = done + 1
  end
  if done >= limit then return 0 end
end
for _, label in ipairs(redis.call('SMEMBERS', G(g) .. ':rl')) do redis.call('DEL', G(g) .. ':r:' .. label) end
redis.call('DEL', G(g) .. ':rl', G(g) .. ':dly')
redis.call('HDEL', INFLIGHT, g)
return 1
