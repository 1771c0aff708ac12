-- ARGV: group, now, retain until, channel, node, all (0|1), limit, ids... (when not all).
-- Moves dead letters back to pending with the attempt reset. Returns {moved, more (0|1)}.
local g, now, retain, channel, node, all = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local limit = tonumber(ARGV[7])
local dl = G(g) .. ':dl'
local ids = {}
if all == '1' then
  ids = redis.call('ZRANGE', dl, 0, limit - 1)
else
  for i = 8, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', dl, id) == 1 then
    local d = D(g, id)
    redis.call('HSET', d, 'a', '0', 'du', now, 'rt', retain, 'i', '0')
    redis.call('HDEL', d, 'e', 'dr', 'dt')
    add_to_backlog(g, id)
    moved = moved + 1
  end
end
if moved > 0 then publish(channel, node, 'a', { g = { g } }) end
local more = '0'
if all == '1' and redis.call('EXISTS', dl) == 1 then more = '1' end
return { moved, more }
