-- upsert_alert_merge: store a batch of alerts of one shard in its alert hash, merging each with the stored
-- version exactly as Alertmanager's provider does (merge only when the activity ranges overlap; earliest startsAt
-- wins; a later explicit endsAt wins). A record is "starts_ms|ends_ms|timeout|updated_ms|json-body".
-- One call per shard per request: argument packing and round trips are per batch, not per alert.
-- KEYS[1] alerts hash, KEYS[2] ends zset (for retention sweeps), KEYS[3] grouped hash (fp -> hash of the config
-- under which the alert's group memberships were all written; cleared when the alert is (re)created)
-- ARGV[1] now_ms, ARGV[2] config hash, then per alert 6 values: fp, starts_ms, ends_ms, timeout (0/1),
-- updated_ms, body
-- Returns per alert 5 values: "starts|ends|timeout|updated" as stored, the stored body when it is not the posted
-- one (else ""), was_firing (0/1), existed (0/1), grouped (0/1).
-- Times are integer milliseconds, written with string.format('%d') (Lua's number-to-string would write 1e14 and
-- more as "1.019e+14"), and every argument is checked before the first write, so a bad call writes nothing.
local now, confhash = tonumber(ARGV[1]), ARGV[2]
local MIN_MS, MAX_MS = -62135596800000, 253402300799000
for i = 3, #ARGV, 6 do
  for j = 1, 4 do
    local v = tonumber(ARGV[i + j])
    if v == nil or v ~= math.floor(v) or v < MIN_MS or v > MAX_MS then
      return redis.error_reply('ERR upsert_alert_merge: bad time argument ' .. tostring(ARGV[i + j]))
    end
  end
end
local function int(v) return string.format('%d', v) end
local out = {}
for i = 3, #ARGV, 6 do
  local fp = ARGV[i]
  local ns, ne, nt, nu = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local body = ARGV[i + 5]
  local kept = ''
  local old = redis.call('HGET', KEYS[1], fp)
  local existed, was_firing = 0, 0
  local os_, oe, ot, ou, obody
  if old then
    -- tonumber also reads records written as "1.019e+14" by earlier versions; an unreadable one is replaced
    os_, oe, ot, ou, obody = string.match(old, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
    os_, oe, ot, ou = tonumber(os_), tonumber(oe), tonumber(ot), tonumber(ou)
    if os_ == nil or oe == nil or ot == nil or ou == nil then old = nil end
  end
  if old then
    existed = 1
    if oe > now then was_firing = 1 end
    local overlap = (ne > os_ and ne < oe) or (ns > os_ and ns < oe)
    if overlap then
      local ms, me, mt, mu, mbody = ns, ne, nt, nu, body
      local os2, oe2, ot2, ou2 = os_, oe, ot, ou
      -- "let o always be the younger alert"
      if nu < ou2 then
        ms, me, mt, mu, mbody, os2, oe2, ot2, ou2 = os2, oe2, ot2, ou2, obody, ns, ne, nt, nu
        kept = obody
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
  if was_firing == 1 and redis.call('HGET', KEYS[3], fp) == confhash then grouped = 1 end
  if was_firing == 0 then redis.call('HDEL', KEYS[3], fp) end
  local head = int(ns) .. '|' .. int(ne) .. '|' .. int(nt) .. '|' .. int(nu)
  redis.call('HSET', KEYS[1], fp, head .. '|' .. body)
  redis.call('ZADD', KEYS[2], ne, fp)
  table.insert(out, head)
  table.insert(out, kept)
  table.insert(out, was_firing)
  table.insert(out, existed)
  table.insert(out, grouped)
end
return out
