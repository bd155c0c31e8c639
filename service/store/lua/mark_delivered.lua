-- mark_delivered: after a successful send, advance the per-group, per-integration delivered sequence number,
-- remember the receiver's state (e.g. the Slack message ts, for later edits) and acknowledge the outbox entry,
-- in one step so that a crash never leaves an entry acknowledged but unrecorded.
-- KEYS[1] delivery state hash, KEYS[2] outbox stream
-- ARGV[1] integration, ARGV[2] seq, ARGV[3] state json ('' = unchanged), ARGV[4] consumer group, ARGV[5] entry id,
-- ARGV[6] ttl s
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':seq') or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1] .. ':seq', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1] .. ':state', ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('XACK', KEYS[2], ARGV[4], ARGV[5])
redis.call('XDEL', KEYS[2], ARGV[5])
return 1
