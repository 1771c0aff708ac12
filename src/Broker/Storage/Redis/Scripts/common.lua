-- Shared by every partition script. KEYS[1] is the partition's base key: "{<prefix>:<partition>}". Every key a
-- script touches starts with it, so one script call stays in one hash slot (Redis Cluster).
-- Times are microseconds since the Unix epoch, passed and stored as decimal strings ("0" = due at once).
-- Optional strings travel with a one-character prefix: "0" = null, "1<text>" = the text.
local B = KEYS[1]
local PART = string.match(B, ':(%d+)}$')
local CTR = B .. ':ctr'
local LOG = B .. ':log'
local GROUPS = B .. ':groups'
local LEASES = B .. ':leases'
local RETAIN = B .. ':ret'
local INFLIGHT = B .. ':infl'
local IDEM = B .. ':idem'
local IDEMX = B .. ':idemx'

-- Groups whose lease candidates changed (a next event of an ordering key became first): announced with the outcomes.
local WOKEN = {}

local function fmt(n) return string.format('%d', n) end
local function opt(v) if v == nil or v == false then return '0' end return '1' .. v end
local function unopt(v) if v == '0' then return false end return string.sub(v, 2) end
local function G(g) return B .. ':g:' .. g end
local function D(g, id) return B .. ':g:' .. g .. ':d:' .. id end
local function member(g, id) return g .. '\n' .. id end
local function split_member(m)
  local at = string.find(m, '\n', 1, true)
  return string.sub(m, 1, at - 1), string.sub(m, at + 1)
end

-- The event of a delivery: its own copy (dead letters, redriven deliveries) or the partition log.
local function read_event(g, id)
  local d = D(g, id)
  local x = redis.call('HGET', d, 'x')
  if x then
    local v = redis.call('HMGET', d, 'l', 'p', 'k', 's', 'ra')
    return v[1], v[2], opt(v[3]), opt(v[4]), v[5]
  end
  local entries = redis.call('XRANGE', LOG, id .. '-1', id .. '-1')
  local f = entries[1][2]
  local e = {}
  for i = 1, #f, 2 do e[f[i]] = f[i + 1] end
  return e.l, e.p, opt(e.k), opt(e.s), e.ra
end

local function copy_event(g, id)
  local d = D(g, id)
  if redis.call('HEXISTS', d, 'x') == 1 then return end
  local label, payload, key, source, raised = read_event(g, id)
  redis.call('HSET', d, 'x', '1', 'p', payload, 'ra', raised)
  if key ~= '0' then redis.call('HSET', d, 'k', unopt(key)) end
  if source ~= '0' then redis.call('HSET', d, 's', unopt(source)) end
end

local function index(g, id, label, due)
  if due == '0' then
    redis.call('ZADD', G(g) .. ':r:' .. label, id, id)
    redis.call('SADD', G(g) .. ':rl', label)
    redis.call('HSET', D(g, id), 'i', '1')
  else
    redis.call('ZADD', G(g) .. ':dly', due, id)
    redis.call('HSET', D(g, id), 'i', '2')
  end
end

local function unready(g, id, label)
  local r = G(g) .. ':r:' .. label
  redis.call('ZREM', r, id)
  if redis.call('EXISTS', r) == 0 then redis.call('SREM', G(g) .. ':rl', label) end
end

local function unindex(g, id)
  local v = redis.call('HMGET', D(g, id), 'i', 'l')
  if v[1] == '1' then
    unready(g, id, v[2])
  elseif v[1] == '2' then
    redis.call('ZREM', G(g) .. ':dly', id)
  end
  redis.call('HSET', D(g, id), 'i', '0')
end

local function first_of_key(g, key)
  return redis.call('ZRANGE', G(g) .. ':ok:' .. key, 0, 0)[1]
end

-- Pending, and a lease candidate when first of its ordering key.
local function make_pending(g, id)
  local d = D(g, id)
  local v = redis.call('HMGET', d, 'l', 'k', 'du', 'rt')
  redis.call('HSET', d, 'st', 'P')
  redis.call('ZADD', RETAIN, v[4], member(g, id))
  if not v[2] or first_of_key(g, v[2]) == id then
    index(g, id, v[1], v[3])
  end
end

local function add_to_backlog(g, id)
  redis.call('ZADD', G(g) .. ':bl', id, id)
  local key = redis.call('HGET', D(g, id), 'k')
  if key then
    local okz = G(g) .. ':ok:' .. key
    local previous = redis.call('ZRANGE', okz, 0, 0)[1]
    redis.call('ZADD', okz, id, id)
    -- A redriven older event goes before the key's current first one, which must wait again.
    if previous and previous ~= id and redis.call('ZRANGE', okz, 0, 0)[1] == id
        and redis.call('HGET', D(g, previous), 'st') == 'P' then
      unindex(g, previous)
    end
  end
  make_pending(g, id)
end

local function end_lease(g, id)
  redis.call('ZREM', LEASES, member(g, id))
  redis.call('HINCRBY', INFLIGHT, g, -1)
  redis.call('HDEL', D(g, id), 'o', 'w')
end

local function remove_from_backlog(g, id)
  local d = D(g, id)
  local v = redis.call('HMGET', d, 'st', 'k')
  if v[1] == 'L' then
    end_lease(g, id)
  else
    redis.call('ZREM', RETAIN, member(g, id))
    unindex(g, id)
  end
  redis.call('ZREM', G(g) .. ':bl', id)
  if v[2] then
    local okz = G(g) .. ':ok:' .. v[2]
    local was_first = redis.call('ZRANGE', okz, 0, 0)[1] == id
    redis.call('ZREM', okz, id)
    if was_first then
      local nxt = redis.call('ZRANGE', okz, 0, 0)[1]
      if nxt then
        local n = redis.call('HMGET', D(g, nxt), 'st', 'i', 'l', 'du')
        if n[1] == 'P' and n[2] == '0' then
          index(g, nxt, n[3], n[4])
          WOKEN[g] = true
        end
      end
    end
  end
end

local function set_error(d, err)
  if err == '0' then redis.call('HDEL', d, 'e') else redis.call('HSET', d, 'e', unopt(err)) end
end

local function dead_letter(g, id, reason, err, now)
  copy_event(g, id)
  local d = D(g, id)
  redis.call('HSET', d, 'st', 'D', 'dr', reason, 'dt', now, 'i', '0')
  set_error(d, err)
  redis.call('ZADD', G(g) .. ':dl', id, id)
end

-- Outcomes are flat lists: id, group, kind (H|F|D), attempt, error (optional), will retry (0|1).
local function push_outcome(list, id, g, kind, attempt, err, retry)
  list[#list + 1] = id
  list[#list + 1] = g
  list[#list + 1] = kind
  list[#list + 1] = attempt
  list[#list + 1] = err
  list[#list + 1] = retry
end

-- A failed attempt of a leased delivery: retry at due, or dead letter past max attempts.
local function fail(g, id, due, err, max_attempts, now, outcomes, woken)
  local attempt = redis.call('HGET', D(g, id), 'a')
  if tonumber(attempt) >= tonumber(max_attempts) then
    remove_from_backlog(g, id)
    dead_letter(g, id, 'max_attempts', err, now)
    push_outcome(outcomes, id, g, 'D', attempt, err, '0')
    return
  end
  end_lease(g, id)
  local d = D(g, id)
  redis.call('HSET', d, 'du', due)
  set_error(d, err)
  make_pending(g, id)
  woken[g] = true
  push_outcome(outcomes, id, g, 'F', attempt, err, '1')
end

-- A lease of a dead broker node back to pending, due now, attempt kept (restart recovery).
local function recover(g, id, now, woken)
  end_lease(g, id)
  redis.call('HSET', D(g, id), 'du', now)
  make_pending(g, id)
  woken[g] = true
end

local function publish(channel, node, kind, body)
  body.n = node
  body.t = kind
  body.p = PART
  redis.call('PUBLISH', channel, node .. ' ' .. cjson.encode(body))
end

local function keys_of(set)
  local list = {}
  for k, _ in pairs(set) do list[#list + 1] = k end
  return list
end

local function publish_outcomes(channel, node, outcomes, woken)
  for g, _ in pairs(WOKEN) do woken[g] = true end
  if #outcomes > 0 then publish(channel, node, 'o', { o = outcomes }) end
  local groups = keys_of(woken)
  if #groups > 0 then publish(channel, node, 'a', { g = groups }) end
end
