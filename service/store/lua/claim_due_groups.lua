-- claim_due_groups: hand each due group flush to exactly one replica. A claimed group is pushed lease_ms into
-- the future (so a crashed claimer's work is retried after the lease) and gets a fencing token that
-- commit_flush checks: a slower replica whose lease ran out cannot commit a second time.
-- KEYS[1] due zset, KEYS[2] claims hash
-- ARGV[1] now_ms, ARGV[2] lease_ms, ARGV[3] limit, ARGV[4] token prefix
-- Returns {gid1, token1, due1, gid2, ...} and, last, the earliest remaining due time (or -1).
local now, lease, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #due, 2 do
  local gid, score = due[i], due[i + 1]
  local token = ARGV[4] .. ':' .. gid .. ':' .. score
  redis.call('ZADD', KEYS[1], now + lease, gid)
  redis.call('HSET', KEYS[2], gid, token)
  table.insert(out, gid)
  table.insert(out, token)
  table.insert(out, score)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then table.insert(out, nxt[2]) else table.insert(out, '-1') end
return out
