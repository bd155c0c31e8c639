-- take_hourly_budget: take one unit of an hour's budget (INCR; the expiry is set on the first use, so the key
-- goes away after the hour). KEYS[1] the hour's counter; ARGV[1] ttl s. Returns the count after this call.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
