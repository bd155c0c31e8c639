-- commit_escalation: record that an escalation step fired (or was skipped), only for the holder of the claim:
-- append the step's notifications to the shard's outbox, move the escalation to its next step (or finish it).
-- KEYS[1] escalation hash, KEYS[2] due zset, KEYS[3] claims hash, KEYS[4] outbox stream, KEYS[5] sequence hash
-- ARGV[1] id, ARGV[2] token, ARGV[3] next_due_ms (-1 = finished), ARGV[4] next step, ARGV[5] ttl s,
-- ARGV[6] n_notif, then triples (integration, receiver, payload)
-- Returns 1 when committed, 0 when the claim was lost.
local id, token = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[3], id) ~= token then return 0 end
redis.call('HDEL', KEYS[3], id)
local nx = tonumber(ARGV[6])
local i = 7
for _ = 1, nx do
  local seq = redis.call('HINCRBY', KEYS[5], ARGV[i], 1)
  redis.call('XADD', KEYS[4], '*', 'gid', id, 'integration', ARGV[i], 'receiver', ARGV[i + 1], 'seq', seq, 'n', ARGV[i + 2])
  i = i + 3
end
if nx > 0 then redis.call('EXPIRE', KEYS[5], ARGV[5]) end
if tonumber(ARGV[3]) < 0 then
  redis.call('HSET', KEYS[1], 'done', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('ZREM', KEYS[2], id)
else
  redis.call('HSET', KEYS[1], 'step', ARGV[4])
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), id)
end
return 1
