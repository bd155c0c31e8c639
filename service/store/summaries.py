"""The summaries' Redis state: the LLM summary cache, the per-hour call budget, and the people's votes on
summaries (service/summaries/summarizer.py decides; this stores).

  P:{summaries}:cache:<digest>      the LLM summary JSON, TTL `cache_ttl`
  P:{summaries}:budget:<hour>       LLM calls started in that event-time hour, TTL 2h
  P:{feedback}:votes:<incident_id>  hash who -> 1|0
  P:{feedback}:totals               hash helpful, total
"""
from __future__ import annotations

from typing import Any

from service.store.keys import LUA_DIR, Keys


class SummaryStore:
    def __init__(self, redis: Any, prefix: str):
        self.redis = redis
        self.keys = Keys(prefix)
        self._take_budget = redis.register_script((LUA_DIR / "take_hourly_budget.lua").read_text())
        self._record_vote = redis.register_script((LUA_DIR / "record_vote_once_per_person.lua").read_text())

    async def cached(self, digest: str) -> bytes | None:
        return await self.redis.get(self.keys.summary_cache(digest))

    async def cache(self, digest: str, encoded: str, ttl: float) -> None:
        await self.redis.set(self.keys.summary_cache(digest), encoded, ex=int(ttl))

    async def take_budget(self, hour: int) -> int:
        """Take one LLM call of event-time hour `hour`; the number taken in that hour so far, this one included."""
        return int(await self._take_budget(keys=[self.keys.summary_budget(hour)], args=[2 * 3600]))

    async def record_vote(self, incident_id: str, who: str, helpful: bool, ttl: float) -> tuple[int, int]:
        """`who`'s vote (replacing theirs); the totals after it: (helpful, total)."""
        helpful_n, total = await self._record_vote(
            keys=[self.keys.summary_votes(incident_id), self.keys.summary_vote_totals()],
            args=[who, 1 if helpful else 0, int(ttl)])
        return int(helpful_n or 0), int(total or 0)

    async def votes(self, incident_id: str) -> dict[str, bool]:
        raw = await self.redis.hgetall(self.keys.summary_votes(incident_id))
        return {k.decode() if isinstance(k, bytes) else k: (v in (b"1", "1")) for k, v in raw.items()}

    async def totals(self) -> tuple[int, int]:
        helpful_n, total = await self.redis.hmget(self.keys.summary_vote_totals(), ["helpful", "total"])
        return int(helpful_n or 0), int(total or 0)
