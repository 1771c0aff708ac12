-- ARGV: group, now, lease until, worker, node, max, accepted label count, accepted labels..., rejected label count,
--   rejected labels...
-- Returns {'N'} (no group) | {'U', labels...} (labels the caller must classify first) |
--   {'L', next due ('' = none), more ready (0|1), then per lease: id, lease no, attempt, label, payload,
--    ordering key (opt), source (opt), raised at}.
local g, now, lease_until, worker, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local max = tonumber(ARGV[6])
if redis.call('SISMEMBER', GROUPS, g) == 0 then return { 'N' } end

local at = 7
local accepted, rejected = {}, {}
local n = tonumber(ARGV[at]); at = at + 1
for i = 1, n do accepted[ARGV[at + i - 1]] = true end
at = at + n
n = tonumber(ARGV[at]); at = at + 1
for i = 1, n do rejected[ARGV[at + i - 1]] = true end

-- Delayed deliveries now due become ready.
local dly = G(g) .. ':dly'
local due = redis.call('ZRANGEBYSCORE', dly, '-inf', now)
for _, id in ipairs(due) do
  redis.call('ZREM', dly, id)
  local label = redis.call('HGET', D(g, id), 'l')
  redis.call('ZADD', G(g) .. ':r:' .. label, id, id)
  redis.call('SADD', G(g) .. ':rl', label)
  redis.call('HSET', D(g, id), 'i', '1')
end

local labels = redis.call('SMEMBERS', G(g) .. ':rl')
local unknown = { 'U' }
local mine = {}
for _, label in ipairs(labels) do
  if accepted[label] then
    mine[#mine + 1] = label
  elseif not rejected[label] then
    unknown[#unknown + 1] = label
  end
end
if #unknown > 1 then return unknown end

-- Oldest event first across the worker's labels.
local candidates = {}
for _, label in ipairs(mine) do
  local ids = redis.call('ZRANGE', G(g) .. ':r:' .. label, 0, max - 1)
  for _, id in ipairs(ids) do candidates[#candidates + 1] = { tonumber(id), id, label } end
end
table.sort(candidates, function(a, b) return a[1] < b[1] end)

local result = { 'L', '', '0' }
local nownum = tonumber(now)
local chosen = {}
local taken = {}
for _, c in ipairs(candidates) do
  if #chosen >= max then break end
  local id, label = c[2], c[3]
  local d = D(g, id)
  local v = redis.call('HMGET', d, 'du', 'a', 'x')
  taken[label] = taken[label] or {}
  taken[label][#taken[label] + 1] = id
  if v[1] ~= '0' and tonumber(v[1]) > nownum then
    -- Promoted by a node with a later clock than this one: not due for this request.
    redis.call('ZADD', dly, v[1], id)
    redis.call('HSET', d, 'i', '2')
  else
    chosen[#chosen + 1] = { id, tonumber(v[2]) + 1, v[3] }
  end
end

-- Out of the ready sets, in one command per label.
for label, ids in pairs(taken) do
  local r = G(g) .. ':r:' .. label
  for i = 1, #ids, 1000 do redis.call('ZREM', r, unpack(ids, i, math.min(i + 999, #ids))) end
  if redis.call('EXISTS', r) == 0 then redis.call('SREM', G(g) .. ':rl', label) end
end

if #chosen > 0 then
  local last = redis.call('HINCRBY', CTR, 'lease', #chosen)
  redis.call('HINCRBY', INFLIGHT, g, #chosen)
  for k, c in ipairs(chosen) do
    local id, attempt = c[1], c[2]
    local lease_no = fmt(last - #chosen + k)
    local d = D(g, id)
    redis.call('ZREM', RETAIN, member(g, id))
    redis.call('HSET', d, 'st', 'L', 'i', '0', 'a', fmt(attempt), 'n', lease_no, 'u', lease_until, 'w', worker, 'o', node)
    redis.call('ZADD', LEASES, lease_until, member(g, id))
    local elabel, payload, key, source, raised = read_event(g, id)
    local r = result
    r[#r + 1] = id; r[#r + 1] = lease_no; r[#r + 1] = fmt(attempt); r[#r + 1] = elabel
    r[#r + 1] = payload; r[#r + 1] = key; r[#r + 1] = source; r[#r + 1] = raised
  end
end

local next_due = redis.call('ZRANGE', dly, 0, 0, 'WITHSCORES')
if next_due[2] then result[2] = next_due[2] end
-- Any ready label, not only the worker's: the partition stays worth asking for this group's other workers.
if redis.call('SCARD', G(g) .. ':rl') > 0 then result[3] = '1' end
return result
