-- start_escalation: begin an incident's escalation once (a deterministic id per incident and policy, so that
-- several replicas, or a repeated first notification, start it only once).
-- KEYS[1] escalation hash, KEYS[2] due zset; ARGV[1] id, ARGV[2] incident, ARGV[3] policy, ARGV[4] first due ms,
-- ARGV[5] ttl s, ARGV[6] route id
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'incident', ARGV[2], 'policy', ARGV[3], 'step', 0, 'route', ARGV[6], 'done', 0)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
