-- ARGV: now, channel, node, partitions, partition, count, then per event:
--   label, payload, ordering key (opt), idempotency key (opt), idempotency until, source (opt), raised at,
--   group count, then per group: name, retain until, max backlog (this partition's share).
-- Returns per event: {'S', id, groups...} | {'U', id, groups...} (duplicate) | {'F', group} (backlog full).
local now = ARGV[1]
local channel, node = ARGV[2], ARGV[3]
local partitions, partition = tonumber(ARGV[4]), tonumber(ARGV[5])
local count = tonumber(ARGV[6])
local at = 7
local results = {}
local woken = {}
local known = {}
local function has_group(g)
  local v = known[g]
  if v == nil then
    v = redis.call('SISMEMBER', GROUPS, g) == 1
    known[g] = v
  end
  return v
end

for _ = 1, count do
  local label, payload, okey, ikey = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local iuntil, source, raised = ARGV[at + 4], ARGV[at + 5], ARGV[at + 6]
  local ngroups = tonumber(ARGV[at + 7])
  at = at + 8
  local routed = {}
  for i = 1, ngroups do
    routed[i] = { ARGV[at], ARGV[at + 1], ARGV[at + 2] }
    at = at + 3
  end

  local result = nil
  if ikey ~= '0' then
    local seen = redis.call('HGET', IDEM, unopt(ikey))
    if seen then
      local fields = {}
      for part in string.gmatch(seen, '[^|]+') do fields[#fields + 1] = part end
      if tonumber(fields[2]) > tonumber(now) then
        result = { 'U', fields[1] }
        if fields[3] then
          for gname in string.gmatch(fields[3], '[^,]+') do result[#result + 1] = gname end
        end
      end
    end
  end

  if not result then
    for _, r in ipairs(routed) do
      if r[3] ~= '9223372036854775807' and has_group(r[1])
          and redis.call('ZCARD', G(r[1]) .. ':bl') >= tonumber(r[3]) then
        result = { 'F', r[1] }
        break
      end
    end
  end

  if not result then
    local seq = redis.call('HINCRBY', CTR, 'seq', 1)
    local id = fmt(seq * partitions + partition)
    local entry = { 'l', label, 'p', payload, 'ra', raised }
    if okey ~= '0' then entry[#entry + 1] = 'k'; entry[#entry + 1] = unopt(okey) end
    if source ~= '0' then entry[#entry + 1] = 's'; entry[#entry + 1] = unopt(source) end
    redis.call('XADD', LOG, id .. '-1', unpack(entry))
    result = { 'S', id }
    local done = {}
    for _, r in ipairs(routed) do
      local g = r[1]
      local d = D(g, id)
      if has_group(g) and not done[g] then
        done[g] = true
        if okey ~= '0' then
          redis.call('HSET', d, 'l', label, 'a', '0', 'du', '0', 'rt', r[2], 'i', '0', 'st', 'P', 'k', unopt(okey))
          add_to_backlog(g, id)
        else
          -- No ordering key: straight into the backlog and the label's ready set.
          redis.call('HSET', d, 'l', label, 'a', '0', 'du', '0', 'rt', r[2], 'i', '1', 'st', 'P')
          redis.call('ZADD', G(g) .. ':bl', id, id)
          redis.call('ZADD', RETAIN, r[2], member(g, id))
          redis.call('ZADD', G(g) .. ':r:' .. label, id, id)
          redis.call('SADD', G(g) .. ':rl', label)
        end
        result[#result + 1] = g
        woken[g] = true
      end
    end
    if ikey ~= '0' then
      local key = unopt(ikey)
      local stored = {}
      for i = 3, #result do stored[#stored + 1] = result[i] end
      redis.call('HSET', IDEM, key, id .. '|' .. iuntil .. '|' .. table.concat(stored, ','))
      redis.call('ZADD', IDEMX, iuntil, key)
    end
  end
  results[#results + 1] = result
end

local groups = keys_of(woken)
if #groups > 0 then publish(channel, node, 'a', { g = groups }) end
return results
