"""The silences' Redis storage: one hash of silence id -> encoded silence and a version counter, both under the
{sil} hash tag, so a write and its version bump commit together (MULTI/EXEC) and replicas revalidate their cached
copy with one GET. It stores encoded silences as given (routing.silences encodes and decides; this module only
reads and writes)."""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from service.store.keys import Keys


class SilenceStore:
    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    async def version(self) -> Any:
        """The version counter (None before the first write): it changes with every write."""
        return await self.redis.get(self.keys.silences_version())

    async def all(self) -> list[bytes]:
        return list((await self.redis.hgetall(self.keys.silences())).values())

    async def get(self, sid: str) -> bytes | None:
        return await self.redis.hget(self.keys.silences(), sid)

    async def put(self, sid: str, encoded: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.silences(), sid, encoded)
        pipe.incr(self.keys.silences_version())
        await pipe.execute()

    async def delete(self, sids: list[str]) -> None:
        if not sids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self.keys.silences(), *sids)
        pipe.incr(self.keys.silences_version())
        await pipe.execute()
