-- commit_flush: record what a group flush decided, atomically and only for the holder of the claim:
-- the notification log entries, the notifications (appended to the shard's outbox stream with a per-group,
-- per-integration sequence number), the removal of resolved members that did not change meanwhile
-- (Alertmanager's DeleteIfNotModified), and the next flush time. An empty group is deleted.
-- KEYS[1] meta, KEYS[2] members, KEYS[3] due zset, KEYS[4] claims hash, KEYS[5] nflog hash, KEYS[6] outbox
-- stream, KEYS[7] sequence hash
-- ARGV[1] gid, ARGV[2] token, ARGV[3] next_due_ms, ARGV[4] nflog ttl s, ARGV[5] n_nflog, ARGV[6] n_notif,
-- ARGV[7] n_remove, ARGV[8] state ttl s, then n_nflog pairs (integration, entry), n_notif triples
-- (integration, receiver, payload), n_remove pairs (fp, generation)
-- Returns 1 when committed, 0 when the claim was lost.
local gid, token = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[4], gid) ~= token then return 0 end
redis.call('HDEL', KEYS[4], gid)
local nn, nx, nr = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 9
for _ = 1, nn do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
if nn > 0 then redis.call('EXPIRE', KEYS[5], ARGV[4]) end
for _ = 1, nx do
  local seq = redis.call('HINCRBY', KEYS[7], ARGV[i], 1)
  redis.call('XADD', KEYS[6], '*', 'gid', gid, 'integration', ARGV[i], 'receiver', ARGV[i + 1], 'seq', seq, 'n', ARGV[i + 2])
  i = i + 3
end
if nx > 0 then redis.call('EXPIRE', KEYS[7], ARGV[8]) end
for _ = 1, nr do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then redis.call('HDEL', KEYS[2], ARGV[i]) end
  i = i + 2
end
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], gid)
else
  redis.call('HSET', KEYS[1], 'flushed', 1)
  redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), gid)
  -- a group whose alerts keep firing (re-sends do not touch it) stays as long as it keeps flushing
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
