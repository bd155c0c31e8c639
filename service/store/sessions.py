"""The web UI's browser sessions and login throttle in Redis (service/http/ui/auth.py decides; this stores).

  P:ui:session:<sha256 of the session id>        string  session JSON, with a TTL
  P:ui:login-failures:<sha256 of the address>    string  wrong tokens in the current window (expires with it)

Single-key commands only, so any key may live in any Cluster slot."""
from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis

if TYPE_CHECKING:
    from service.store.keys import Keys


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys

    async def get(self, sid_hash: str) -> bytes | None:
        return await self.redis.get(self.keys.ui_session(sid_hash))

    async def put(self, sid_hash: str, body: str, ttl: float) -> None:
        await self.redis.set(self.keys.ui_session(sid_hash), body, ex=int(ttl))

    async def delete(self, sid_hash: str) -> None:
        await self.redis.delete(self.keys.ui_session(sid_hash))

    async def failures(self, addr_hash: str) -> int:
        n = await self.redis.get(self.keys.ui_login_failures(addr_hash))
        return 0 if n is None else int(n)

    async def count_failure(self, addr_hash: str, window: float) -> None:
        """One more wrong token from this address; the count expires `window` seconds after the last one."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(self.keys.ui_login_failures(addr_hash))
        pipe.expire(self.keys.ui_login_failures(addr_hash), int(window))
        await pipe.execute()
