"""Learned co-occurrence: which alert keys (service/metric) fire together, kept in Redis, decayed by event time.

The weight of a pair is the decayed Jaccard index of the incidents they were seen in,
    w(a, b) = c(a, b) / (n(a) + n(b) - c(a, b) + PRIOR),
where n(x) counts closed incidents containing x and c(a, b) those containing both. PRIOR keeps a
single coincidence from counting much (one shared incident gives 0.33, three give 0.6, ten 0.83).
Manual merges add to c (positive feedback), splits subtract (negative), so people correct it.
All counts decay with a half-life in event time: a topology change makes old pairs fade.

Keys (one hash tag per domain, so one Lua call updates them atomically):
  {prefix}:{co:<domain>}:n          hash  key -> "count|t"   incidents containing key
  {prefix}:{co:<domain>}:lead       hash  key -> "count|t"   incidents where key fired first
  {prefix}:{co:<domain>}:p:<key>    hash  other -> "count|t" incidents containing both
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Callable, Iterable

import numpy as np
from redis.asyncio import Redis

from service.store.keys import Keys, execute_behind, queue_script

PRIOR = 2.0
MAX_KEYS_PER_INCIDENT = 40  # 780 pairs at most per closed incident; storms stay bounded
MERGE_BONUS = 2.0  # a human merge is worth two co-occurrences
SPLIT_PENALTY = 3.0  # a human split outweighs three co-occurrences

# decay_add: for each (key index, field, delta), decay the stored count to `now` and add delta.
# Guarantees the read-modify-write of each field is atomic across replicas.
DECAY_ADD = """
local now = tonumber(ARGV[1])
local k = math.log(2) / tonumber(ARGV[2])
local i = 3
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i])]
  local field = ARGV[i + 1]
  local delta = tonumber(ARGV[i + 2])
  local old = redis.call('HGET', key, field)
  local c, t = 0, now
  if old then
    local sep = string.find(old, '|', 1, true)
    c = tonumber(string.sub(old, 1, sep - 1))
    t = tonumber(string.sub(old, sep + 1))
  end
  local dt = now - t
  if dt < 0 then dt = 0 end
  c = c * math.exp(-k * dt) + delta
  if now > t then t = now end
  redis.call('HSET', key, field, string.format('%.6f|%.3f', c, t))
  i = i + 3
end
return 1
"""


def _clean(key: str) -> str:
    return key[:200]


class CooccurrenceStore:
    def __init__(self, redis: Redis, prefix: str, half_life: float = 14 * 86400.0, domain: str = "default"):
        self.redis = redis
        self.half_life = half_life
        self.k = Keys(prefix).cooccurrence(domain)
        self.base = self.k.base
        self._script = redis.register_script(DECAY_ADD)
        self.decay_add = self._script  # also for other decayed counters of the same domain (verdicts)

    def _pair(self, key: str) -> str:
        return self.k.pair(_clean(key))

    async def _apply(self, now: float, updates: list[tuple[str, str, float]]) -> None:
        if not updates:
            return
        keys: dict[str, int] = {}
        argv: list[str | float] = [now, self.half_life]
        for hkey, fld, delta in updates:
            idx = keys.setdefault(hkey, len(keys) + 1)
            argv += [idx, fld, delta]
        pipe = self.redis.pipeline(transaction=False)
        queue_script(pipe, self._script, keys=list(keys), args=argv)
        await execute_behind(pipe)  # (the reply says nothing: a write-behind client sends it with its next call)

    async def record_incident(self, keys: Iterable[str], first: str | None, now: float) -> None:
        """A closed incident: every key and every pair of keys co-occurred once."""
        ks = sorted({_clean(k) for k in keys})[:MAX_KEYS_PER_INCIDENT]
        ups: list[tuple[str, str, float]] = [(self.k.n, k, 1.0) for k in ks]
        for a, b in combinations(ks, 2):
            ups += [(self._pair(a), b, 1.0), (self._pair(b), a, 1.0)]
        if first:
            ups.append((self.k.lead, _clean(first), 1.0))
        await self._apply(now, ups)

    async def feedback(self, a_keys: Iterable[str], b_keys: Iterable[str], positive: bool, now: float) -> None:
        """A manual merge (positive) or split (negative) between two sets of keys."""
        delta = MERGE_BONUS if positive else -SPLIT_PENALTY
        ups: list[tuple[str, str, float]] = []
        for a in sorted(set(a_keys))[:MAX_KEYS_PER_INCIDENT]:
            for b in sorted(set(b_keys))[:MAX_KEYS_PER_INCIDENT]:
                if a != b:
                    ups += [(self._pair(a), _clean(b), delta), (self._pair(b), _clean(a), delta)]
        await self._apply(now, ups)

    def _decay(self, raw: list[bytes | None], now: float) -> np.ndarray:
        vals = np.zeros(len(raw))
        ts = np.full(len(raw), now)
        for i, r in enumerate(raw):
            if r:
                c, t = r.decode().split("|")
                vals[i], ts[i] = float(c), float(t)
        return vals * np.exp(-math.log(2) / self.half_life * np.clip(now - ts, 0, None))

    async def lookup(self, key: str, now: float) -> Callable[[str, str], float]:
        """Weights of `key` against every key it was seen with, as a lookup(a, b) for decide()."""
        key = _clean(key)
        row = await self.redis.hgetall(self._pair(key))
        if not row:
            return lambda a, b: 0.0
        others = [o.decode() for o in row]
        c = self._decay(list(row.values()), now)
        n = self._decay(await self.redis.hmget(self.k.n, [key] + others), now)
        c = np.clip(c, 0, None)
        # Feedback can make c exceed the incident counts; the union is never smaller than c.
        union = np.maximum(n[0] + n[1:] - c, c)
        w = c / (union + PRIOR)
        table = {o: float(x) for o, x in zip(others, np.clip(w, 0.0, 1.0))}

        def get(a: str, b: str) -> float:
            if a == key:
                return table.get(_clean(b), 0.0)
            if b == key:
                return table.get(_clean(a), 0.0)
            return 0.0

        return get

    async def weight(self, a: str, b: str, now: float) -> float:
        return (await self.lookup(a, now))(a, b)

    async def lead_history(self, keys: Iterable[str], now: float) -> Callable[[str], float]:
        """Share of past incidents containing each key in which it fired first, as lookup(key)."""
        async with self.redis.pipeline(transaction=False) as p:
            ks = self.queue_lead_reads(p, keys)
            raw = await p.execute() if ks else []
        return self.lead_lookup(ks, raw, now)

    def queue_lead_reads(self, pipe: Any, keys: Iterable[str]) -> list[str]:
        """Queue on `pipe` the reads `lead_lookup` needs (two HMGETs, none without keys); returns the keys read."""
        ks = sorted({_clean(k) for k in keys})
        if ks:
            pipe.hmget(self.k.lead, ks)
            pipe.hmget(self.k.n, ks)
        return ks

    def lead_lookup(self, ks: list[str], raw: list[Any], now: float) -> Callable[[str], float]:
        """lead_history's lookup from the two replies queued by `queue_lead_reads(pipe, ...)` (`ks` its result)."""
        if not ks:
            return lambda k: 0.0
        lead, n = self._decay(raw[0], now), self._decay(raw[1], now)
        share = {k: float(l / (x + 1.0)) for k, l, x in zip(ks, lead, n)}
        return lambda k: share.get(_clean(k), 0.0)
