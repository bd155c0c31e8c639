-- sweep_resolved_alerts: forget alerts that ended before the cutoff (Alertmanager's provider GC).
-- KEYS[1] alerts hash, KEYS[2] ends zset, KEYS[3] grouped hash; ARGV[1] cutoff_ms, ARGV[2] limit
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, fp in ipairs(old) do
  redis.call('HDEL', KEYS[1], fp)
  redis.call('HDEL', KEYS[3], fp)
  redis.call('ZREM', KEYS[2], fp)
end
return #old
