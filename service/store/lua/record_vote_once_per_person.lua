-- record_vote_once_per_person: one person's vote on one incident's summary (a changed vote replaces the old
-- one) and the totals, kept consistent in one step. KEYS[1] the incident's votes hash, KEYS[2] the totals hash;
-- ARGV[1] who, ARGV[2] 1|0, ARGV[3] ttl s of the votes (0: none). Returns {helpful, total}.
local new = tonumber(ARGV[2])
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], new)
if ARGV[3] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if old then
  redis.call('HINCRBY', KEYS[2], 'helpful', new - tonumber(old))
else
  redis.call('HINCRBY', KEYS[2], 'total', 1)
  redis.call('HINCRBY', KEYS[2], 'helpful', new)
end
return redis.call('HMGET', KEYS[2], 'helpful', 'total')
