-- enqueue_notifications: append notifications to a shard's outbox under a lane id (gid), each with the lane's
-- next per-integration sequence number, so that delivery keeps their order and state (e.g. a Slack ts).
-- KEYS[1] outbox stream, KEYS[2] sequence hash; ARGV[1] gid, ARGV[2] ttl s, then triples
-- (integration, receiver, payload)
for i = 3, #ARGV, 3 do
  local seq = redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
  redis.call('XADD', KEYS[1], '*', 'gid', ARGV[1], 'integration', ARGV[i], 'receiver', ARGV[i + 1], 'seq', seq,
             'n', ARGV[i + 2])
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
