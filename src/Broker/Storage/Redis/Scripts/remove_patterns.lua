-- KEYS[1]: the catalog hash. ARGV: channel, node, group, patterns...
-- Returns {} when the group does not exist, else {changed (0|1), remaining patterns...}.
local catalog = KEYS[1]
local channel, node, g = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', catalog, g)
if not current then return {} end
local remove = {}
for i = 4, #ARGV do remove[ARGV[i]] = true end
local list = {}
local changed = false
for p in string.gmatch(current, '[^\n]+') do
  if remove[p] then changed = true else list[#list + 1] = p end
end
if changed then
  redis.call('HSET', catalog, g, table.concat(list, '\n'))
  redis.call('PUBLISH', channel, node .. ' ' .. cjson.encode({ n = node, t = 'g' }))
end
local result = { changed and 1 or 0 }
for _, p in ipairs(list) do result[#result + 1] = p end
return result
