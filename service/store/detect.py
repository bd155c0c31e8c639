"""The detectors' state in Redis: state snapshots per series, query cursors, the shadow stream.

Key layout (``P`` is Tocsin's key prefix; ``{dN}`` a hash tag, N = crc32(series id) % shards):

  P:{dN}:detect:state      hash  series id -> zlib(JSON) detector state (baselines, calibration, warm-up, alert)
  P:{dN}:detect:cursor     hash  query name -> last evaluated step (epoch seconds)   (shard of the query name)
  P:{det}:detect:shadow    stream of the events `shadow: true` would have sent (capped, newest kept)

Every command touches one key; there is no multi-key command, so Redis Cluster is fine.
"""
from __future__ import annotations

import zlib
from typing import Any

import orjson
from redis.asyncio import Redis

from service.store.keys import DetectKeys

SHADOW_MAXLEN = 10000


def pack(state: dict[str, Any]) -> bytes:
    return zlib.compress(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY), 3)


def unpack(blob: bytes) -> dict[str, Any]:
    return orjson.loads(zlib.decompress(blob))


class DetectStore:
    def __init__(self, redis: Redis, keys: DetectKeys):
        self.redis = redis
        self.keys = keys

    async def load(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        by_shard: dict[int, list[str]] = {}
        for i in ids:
            by_shard.setdefault(self.keys.shard_of(i), []).append(i)
        out: dict[str, dict[str, Any]] = {}
        for shard, members in by_shard.items():
            for i, blob in zip(members, await self.redis.hmget(self.keys.state(shard), members)):
                if blob is not None:
                    out[i] = unpack(blob)
        return out

    async def save(self, states: dict[str, dict[str, Any]]) -> None:
        by_shard: dict[int, dict[str, bytes]] = {}
        for i, st in states.items():
            by_shard.setdefault(self.keys.shard_of(i), {})[i] = pack(st)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, mapping in by_shard.items():
                pipe.hset(self.keys.state(shard), mapping=mapping)
            await pipe.execute()

    async def cursor(self, name: str) -> float | None:
        v = await self.redis.hget(self.keys.cursor(self.keys.shard_of(name)), name)
        return float(v) if v is not None else None

    async def set_cursor(self, name: str, t: float) -> None:
        await self.redis.hset(self.keys.cursor(self.keys.shard_of(name)), name, repr(float(t)))

    async def record_shadow(self, events: list[dict[str, Any]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in events:
                pipe.xadd(self.keys.shadow(), {"event": orjson.dumps(e)}, maxlen=SHADOW_MAXLEN, approximate=True)
            await pipe.execute()

    async def shadow(self, count: int = 100) -> list[dict[str, Any]]:
        rows = await self.redis.xrevrange(self.keys.shadow(), count=count)
        return [orjson.loads(fields[b"event"]) for _, fields in reversed(rows)]
