"""The digests' buffer and schedule in Redis, one hash tag per digest integration so that a run's claim and its
forgetting of what it sent commit together (the two Lua scripts below, run by EVAL):

  P:{dig:<integration>}:buf   hash  item (incident id or group key) -> notification JSON
  P:{dig:<integration>}:due   zset  "run" -> next run ms
  P:{dig:<integration>}:last  string  when the last digest went out (ms)

It implements routing.receivers.digest.DigestStorage; the receiver decides what goes in and when it goes out.
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from service.store.keys import Keys

# Move the schedule ahead only if it is still the due time the caller read (a WATCH-free compare-and-set).
CLAIM = ("if tonumber(redis.call('ZSCORE', KEYS[1], 'run') or '-1') == tonumber(ARGV[1]) then "
         "redis.call('ZADD', KEYS[1], ARGV[2], 'run') return 1 end return 0")
# Forget exactly what was sent (an item updated meanwhile stays), note the run, schedule the next one if any.
FORGET = ("for i = 3, #ARGV, 2 do if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then "
          "redis.call('HDEL', KEYS[1], ARGV[i]) end end "
          "redis.call('SET', KEYS[2], ARGV[1]) "
          "if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[3]) "
          "else redis.call('ZADD', KEYS[3], ARGV[2], 'run') end return 1")


class DigestStore:
    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    def _k(self, integration: str, what: str) -> str:
        return self.keys.digest(integration, what)

    async def add(self, integration: str, item: str, doc: str, run_ms: int) -> None:
        """Buffer (or replace) an item; schedule a run at `run_ms` unless one is scheduled."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k(integration, "buf"), item, doc)
        pipe.zadd(self._k(integration, "due"), {"run": run_ms}, nx=True)
        await pipe.execute()

    async def drop(self, integration: str, item: str) -> None:
        await self.redis.hdel(self._k(integration, "buf"), item)

    async def due_ms(self, integration: str) -> float | None:
        score = await self.redis.zscore(self._k(integration, "due"), "run")
        return None if score is None else float(score)

    async def claim(self, integration: str, due_ms: int, until_ms: int) -> bool:
        """Move the run from `due_ms` (as read) to `until_ms`; False if another replica moved it first."""
        return bool(int(await self.redis.eval(CLAIM, 1, self._k(integration, "due"), due_ms, until_ms)))

    async def last_ms(self, integration: str) -> float | None:
        v = await self.redis.get(self._k(integration, "last"))
        return float(v) if v else None

    async def items(self, integration: str) -> dict[Any, Any]:
        """The buffer as stored: item -> notification JSON (give it back to `forget`)."""
        return await self.redis.hgetall(self._k(integration, "buf"))

    async def forget(self, integration: str, sent: dict[Any, Any], now_ms: int, next_ms: int) -> None:
        args: list[Any] = [now_ms, next_ms]
        for k, v in sent.items():
            args += [k, v]
        await self.redis.eval(FORGET, 3, self._k(integration, "buf"), self._k(integration, "last"),
                              self._k(integration, "due"), *args)
