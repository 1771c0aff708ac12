-- The group catalog. KEYS[1]: the catalog hash (group -> patterns joined by newlines).
-- ARGV: channel, node, group, patterns... Returns {changed (0|1), patterns...}.
local catalog = KEYS[1]
local channel, node, g = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', catalog, g)
local set, list = {}, {}
local changed = current == false
if current then
  for p in string.gmatch(current, '[^\n]+') do set[p] = true; list[#list + 1] = p end
end
for i = 4, #ARGV do
  if not set[ARGV[i]] then set[ARGV[i]] = true; list[#list + 1] = ARGV[i]; changed = true end
end
if changed then
  redis.call('HSET', catalog, g, table.concat(list, '\n'))
  redis.call('PUBLISH', channel, node .. ' ' .. cjson.encode({ n = node, t = 'g' }))
end
local result = { changed and 1 or 0 }
for _, p in ipairs(list) do result[#result + 1] = p end
return result
