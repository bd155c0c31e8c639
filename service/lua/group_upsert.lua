-- group_upsert: make alerts members of their aggregation groups (all in one shard) and keep the groups' flush
-- timers, like Alertmanager's aggrGroup.insert. A new group is due after group_wait; a group that has not flushed
-- yet is due at once when the alert started more than group_wait ago.
-- KEYS[1] due zset, then per item: group meta hash, members hash (fp -> generation)
-- ARGV[1] now_ms, ARGV[2] ttl seconds, then per item 8 values: gid, route_id, group_key, group_labels json, fp,
-- generation, group_wait_ms, starts_ms
-- Returns each item's group due time in ms after the update.
local now, ttl = tonumber(ARGV[1]), ARGV[2]
local out = {}
local k = 2
for i = 3, #ARGV, 8 do
  local meta, members = KEYS[k], KEYS[k + 1]
  k = k + 2
  local gid, wait, starts = ARGV[i], tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  if redis.call('EXISTS', meta) == 0 then
    redis.call('HSET', meta, 'route', ARGV[i + 1], 'key', ARGV[i + 2], 'labels', ARGV[i + 3], 'created', now,
               'flushed', 0)
    redis.call('ZADD', KEYS[1], now + wait, gid)
  end
  redis.call('HSET', members, ARGV[i + 4], ARGV[i + 5])
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', members, ttl)
  if redis.call('HGET', meta, 'flushed') == '0' and starts + wait < now then
    local cur = tonumber(redis.call('ZSCORE', KEYS[1], gid))
    if cur == nil or cur > now then redis.call('ZADD', KEYS[1], now, gid) end
  end
  local due = redis.call('ZSCORE', KEYS[1], gid)
  if not due then
    redis.call('ZADD', KEYS[1], now + wait, gid)
    due = now + wait
  end
  table.insert(out, tonumber(due))
end
return out
