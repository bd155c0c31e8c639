-- group_upsert: make alerts members of their aggregation groups (all in one shard) and keep the groups' flush
-- timers, like Alertmanager's aggrGroup.insert. A new group is due after group_wait; a group that has not flushed
-- yet is due at once when one of the alerts started more than group_wait ago.
-- KEYS[1] due zset, then per group: group meta hash, members hash (fp -> generation)
-- ARGV[1] now_ms, ARGV[2] ttl seconds, then per group: gid, route_id, group_key, group_labels json, group_wait_ms,
-- n, then n triples (fp, generation, starts_ms)
-- Returns each group's due time in ms after the update.
local now, ttl = tonumber(ARGV[1]), ARGV[2]
local out = {}
local k = 2
local i = 3
while i <= #ARGV do
  local meta, members = KEYS[k], KEYS[k + 1]
  k = k + 2
  local gid, wait, n = ARGV[i], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  if redis.call('EXISTS', meta) == 0 then
    redis.call('HSET', meta, 'route', ARGV[i + 1], 'key', ARGV[i + 2], 'labels', ARGV[i + 3], 'created', now,
               'flushed', 0)
    redis.call('ZADD', KEYS[1], now + wait, gid)
  end
  local j = i + 6
  local earliest = nil
  local pairs_ = {}
  for _ = 1, n do
    pairs_[#pairs_ + 1] = ARGV[j]
    pairs_[#pairs_ + 1] = ARGV[j + 1]
    local s = tonumber(ARGV[j + 2])
    if earliest == nil or s < earliest then earliest = s end
    if #pairs_ >= 1000 then
      redis.call('HSET', members, unpack(pairs_))
      pairs_ = {}
    end
    j = j + 3
  end
  if #pairs_ > 0 then redis.call('HSET', members, unpack(pairs_)) end
  i = j
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', members, ttl)
  if earliest ~= nil and earliest + wait < now and redis.call('HGET', meta, 'flushed') == '0' then
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
