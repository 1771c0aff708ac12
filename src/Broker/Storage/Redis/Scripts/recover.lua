-- Returns the leases held through broker nodes that are gone (shut down, or silent past the node timeout) to pending,
-- due now, attempt kept: their workers' streams ended with the node.
-- ARGV: now, channel, node, gone node count, gone nodes...
-- Returns how many leases it returned.
local now, channel, node = ARGV[1], ARGV[2], ARGV[3]
local gone = {}
for i = 1, tonumber(ARGV[4]) do gone[ARGV[4 + i]] = true end
local woken = {}
local returned = 0
for _, m in ipairs(redis.call('ZRANGE', LEASES, 0, -1)) do
  local g, id = split_member(m)
  local owner = redis.call('HGET', D(g, id), 'o')
  if owner and gone[owner] then
    recover(g, id, now, woken)
    returned = returned + 1
  end
end
publish_outcomes(channel, node, {}, woken)
return returned
