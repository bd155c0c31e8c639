"""The escalations' Redis state: one hash per escalation (incident, policy, step, route, done) and per-shard
sorted sets of due times with a claims hash, as for group timers. Starting is idempotent (a deterministic id per
incident and policy), claiming is atomic with a fencing token, and a fired step commits its notifications to the
outbox and the next step in one script (service/store/lua/{start,commit}_escalation.lua,
claim_due_groups.lua). What to do at each step is decided elsewhere (service/incidents/escalation.decide)."""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from service.core.clock import ms
from service.store.keys import Keys, Scripts, queue_script


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else v


class EscalationStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, ttl: float):
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.ttl = int(ttl)

    async def start(self, eid: str, incident_id: str, policy: str, route_id: str, due: float) -> bool:
        """Begin escalation `eid` with its first step due at `due`; False if it already exists."""
        started = await self.scripts.start_escalation(
            keys=[self.keys.esc(eid), self.keys.esc_due(self.keys.shard_of(eid))],
            args=[eid, incident_id, policy, ms(due), self.ttl, route_id])
        return bool(int(started))

    async def next_due(self) -> float | None:
        """The earliest due time of any escalation (one pipeline over the shards)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.zrange(self.keys.esc_due(shard), 0, 0, withscores=True)
        times = [float(r[0][1]) / 1000 for r in await pipe.execute() if r]
        return min(times) if times else None

    async def claim_due(self, now: float, lease: float, token: str, limit: int = 64) -> list[tuple[str, str]]:
        """Claim up to `limit` due escalations per shard for `lease` seconds: [(id, fencing token)]."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            queue_script(pipe, self.scripts.claim_due_groups,
                         keys=[self.keys.esc_due(shard), self.keys.esc_claims(shard)],
                         args=[ms(now), ms(lease), limit, token])
        out = []
        for res in await pipe.execute():
            items = res[:-1]
            out += [(_str(items[i]), _str(items[i + 1])) for i in range(0, len(items), 3)]
        return out

    async def read(self, eid: str) -> dict[str, str]:
        """The escalation's stored fields ({} if there is none)."""
        return {_str(k): _str(v) for k, v in (await self.redis.hgetall(self.keys.esc(eid))).items()}

    async def due_at(self, eid: str) -> float | None:
        """When the escalation's next step is due (None: finished or unknown)."""
        score = await self.redis.zscore(self.keys.esc_due(self.keys.shard_of(eid)), eid)
        return None if score is None else float(score) / 1000

    async def commit(self, eid: str, token: str, next_due: float | None, next_step: int,
                     notes: list[tuple[str, str, str]]) -> bool:
        """Record a fired (or skipped) step for the holder of claim `token`: queue `notes` (integration, receiver,
        encoded notification) on the outbox and move to `next_step` due at `next_due` (None: finished). False
        when the claim was lost (another replica took the step over after the lease)."""
        shard = self.keys.shard_of(eid)
        args: list[Any] = [eid, token, ms(next_due) if next_due is not None else -1, next_step, self.ttl, len(notes)]
        for n in notes:
            args += list(n)
        ok = await self.scripts.commit_escalation(
            keys=[self.keys.esc(eid), self.keys.esc_due(shard), self.keys.esc_claims(shard), self.keys.outbox(shard),
                  self.keys.seq(eid)], args=args)
        return bool(int(ok))
