-- upsert_alert_merge: store an alert in its shard's alert hash, merging with the stored version exactly as
-- Alertmanager's provider does (merge only when the activity ranges overlap; earliest startsAt wins; a later
-- explicit endsAt wins). A record is "starts_ms|ends_ms|timeout|updated_ms|json-body".
-- KEYS[1] alerts hash, KEYS[2] ends zset (for retention sweeps), KEYS[3] grouped hash (fp -> hash of the config
-- under which the alert's group memberships were all written; cleared when the alert is (re)created)
-- ARGV[1] fp, ARGV[2] starts_ms, ARGV[3] ends_ms, ARGV[4] timeout (0/1), ARGV[5] updated_ms, ARGV[6] body,
-- ARGV[7] now_ms, ARGV[8] config hash
-- Returns {record, was_firing (0/1), existed (0/1), grouped (0/1)}
local fp = ARGV[1]
local ns, ne, nt, nu = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local body, now = ARGV[6], tonumber(ARGV[7])
local old = redis.call('HGET', KEYS[1], fp)
local existed, was_firing = 0, 0
if old then
  existed = 1
  local os_, oe, ot, ou, obody = string.match(old, '^(%-?%d+)|(%-?%d+)|(%d)|(%-?%d+)|(.*)$')
  os_, oe, ot, ou = tonumber(os_), tonumber(oe), tonumber(ot), tonumber(ou)
  if oe > now then was_firing = 1 end
  local overlap = (ne > os_ and ne < oe) or (ns > os_ and ns < oe)
  if overlap then
    local ms, me, mt, mu, mbody = ns, ne, nt, nu, body
    local os2, oe2, ot2, ou2 = os_, oe, ot, ou
    -- "let o always be the younger alert"
    if nu < ou2 then
      ms, me, mt, mu, mbody, os2, oe2, ot2, ou2 = os2, oe2, ot2, ou2, obody, ns, ne, nt, nu
      obody = body
    end
    local rs, re = ms, me
    if os2 < ms then rs = os2 end
    if me <= now then
      if oe2 <= now and oe2 > me then re = oe2 end
    else
      if oe2 > me and ot2 == 0 then re = oe2 end
    end
    ns, ne, nt, nu, body = rs, re, mt, mu, mbody
  end
end
local grouped = 0
if was_firing == 1 and redis.call('HGET', KEYS[3], fp) == ARGV[8] then grouped = 1 end
if was_firing == 0 then redis.call('HDEL', KEYS[3], fp) end
local rec = ns .. '|' .. ne .. '|' .. nt .. '|' .. nu .. '|' .. body
redis.call('HSET', KEYS[1], fp, rec)
redis.call('ZADD', KEYS[2], ne, fp)
return {rec, was_firing, existed, grouped}
