"""Once-only markers in Redis: the first caller to claim a key within its TTL wins (SET NX EX), so replicas share
what they have already seen (signed Slack requests, PagerDuty webhook deliveries). Single-key commands."""
from __future__ import annotations

from typing import Any


class Once:
    def __init__(self, redis: Any):
        self.redis = redis

    async def claim(self, key: str, ttl: float) -> bool:
        """True for the first claim of `key` within `ttl` seconds, False for every later one."""
        return bool(await self.redis.set(key, "1", nx=True, ex=int(ttl)))

    async def release(self, key: str) -> None:
        """Forget a claim (the work it guarded failed; the next attempt must not look like a duplicate)."""
        await self.redis.delete(key)
