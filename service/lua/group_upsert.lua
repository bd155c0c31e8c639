-- group_upsert: make an alert a member of its aggregation group and keep the group's flush timer, like
-- Alertmanager's aggrGroup.insert. A new group is due after group_wait; a group that has not flushed yet is due
-- at once when the alert started more than group_wait ago.
-- KEYS[1] group meta hash, KEYS[2] members hash (fp -> generation), KEYS[3] due zset
-- ARGV[1] gid, ARGV[2] route_id, ARGV[3] group_key, ARGV[4] group_labels json, ARGV[5] fp, ARGV[6] generation,
-- ARGV[7] now_ms, ARGV[8] group_wait_ms, ARGV[9] starts_ms, ARGV[10] ttl seconds
-- Returns the group's due time in ms after the update.
local gid, now, wait, starts = ARGV[1], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'route', ARGV[2], 'key', ARGV[3], 'labels', ARGV[4], 'created', now, 'flushed', 0)
  redis.call('ZADD', KEYS[3], now + wait, gid)
end
redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('EXPIRE', KEYS[2], ARGV[10])
if redis.call('HGET', KEYS[1], 'flushed') == '0' and starts + wait < now then
  local cur = tonumber(redis.call('ZSCORE', KEYS[3], gid))
  if cur == nil or cur > now then redis.call('ZADD', KEYS[3], now, gid) end
end
local due = redis.call('ZSCORE', KEYS[3], gid)
if not due then
  redis.call('ZADD', KEYS[3], now + wait, gid)
  due = now + wait
end
return tonumber(due)
