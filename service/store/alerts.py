"""The alert store: alerts in Redis, merged atomically when re-sent (Lua `upsert_alert_merge`), with an end-time
index for listing and the retention sweeps.

A record is `startsAt|endsAt|timeout|updatedAt|body` (times in integer ms; the body is the labels, annotations,
generator URL, source and detector as sorted JSON)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from service.core.models import Alert
from service.store.keys import Keys, Scripts, ms, queue_script


# -- records ----------------------------------------------------------------------------------------------

def encode_body(a: Alert) -> bytes:
    return orjson.dumps({"l": a.labels, "a": a.annotations, "g": a.generator_url, "s": a.source, "d": a.detector},
                        option=orjson.OPT_SORT_KEYS)


def decode_record(fp: str, rec: bytes | str) -> Alert:
    if isinstance(rec, bytes):
        rec = rec.decode()
    s, e, t, u, body = rec.split("|", 4)
    d = orjson.loads(body)
    return Alert(labels=d["l"], annotations=d["a"], starts_at=int(float(s)) / 1000, ends_at=int(float(e)) / 1000,
                 generator_url=d["g"], updated_at=int(float(u)) / 1000, timeout=t == "1", fingerprint=fp,
                 source=d.get("s", "prometheus"), detector=d.get("d"))


@dataclass
class Upserted:
    alert: Alert  # the merged alert as stored
    was_firing: bool
    existed: bool
    generation: str  # changes whenever the stored record changes
    grouped: bool = False  # was firing, and its memberships under this config were written after it was stored


class AlertStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts):
        self.redis = redis
        self.keys = keys
        self.scripts = scripts

    async def upsert_many(self, alerts: list[Alert], now: float, config_hash: str = "") -> list[Upserted]:
        """Store (merge) a batch of alerts: one script call per shard, all in one round trip. Results are in
        the order of `alerts`."""
        by_shard: dict[int, list[int]] = {}
        for i, a in enumerate(alerts):
            by_shard.setdefault(self.keys.shard_of(a.fingerprint), []).append(i)
        pipe = self.redis.pipeline(transaction=False)
        now_ms = ms(now)
        order = list(by_shard.items())
        for shard, idxs in order:
            args: list[Any] = [now_ms, config_hash]
            for i in idxs:
                a = alerts[i]
                args += [a.fingerprint, ms(a.starts_at), ms(a.ends_at), int(a.timeout), ms(a.updated_at),
                         encode_body(a)]
            queue_script(pipe, self.scripts.upsert_alert_merge,
                         keys=[self.keys.alerts(shard), self.keys.alert_ends(shard), self.keys.alerts_grouped(shard)],
                         args=args)
        results = await pipe.execute()
        out: list[Upserted | None] = [None] * len(alerts)
        for (shard, idxs), res in zip(order, results):
            for j, i in enumerate(idxs):
                head, kept, was_firing, existed, grouped = res[5 * j: 5 * j + 5]
                out[i] = self._upserted(alerts[i], head, kept, was_firing, existed, grouped)
        return out  # type: ignore[return-value]

    @staticmethod
    def _upserted(posted: Alert, head: Any, kept: Any, was_firing: Any, existed: Any, grouped: Any) -> Upserted:
        head = head.decode() if isinstance(head, bytes) else head
        s, e, t, u = head.split("|")
        if kept:  # the stored version was younger: its labels/annotations stay
            stored = decode_record(posted.fingerprint, f"{head}|{kept.decode() if isinstance(kept, bytes) else kept}")
            alert = stored
        else:  # the posted alert is ours (parsed from the request): give it the merged times
            alert = posted
            alert.starts_at = int(float(s)) / 1000
            alert.ends_at = int(float(e)) / 1000
            alert.updated_at = int(float(u)) / 1000
            alert.timeout = t == "1"
        return Upserted(alert, bool(int(was_firing)), bool(int(existed)), u, bool(int(grouped)))

    async def get_many(self, fps: list[str]) -> dict[str, Alert]:
        if not fps:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for fp in fps:
            pipe.hget(self.keys.alerts(self.keys.shard_of(fp)), fp)
        recs = await pipe.execute()
        return {fp: decode_record(fp, r) for fp, r in zip(fps, recs) if r is not None}

    async def fetch(self, fps: set[str] | list[str]) -> dict[str, Alert]:
        """Stored alerts by fingerprint: one HMGET per alert shard (all in one round trip)."""
        by_shard: dict[int, list[str]] = {}
        for fp in fps:
            by_shard.setdefault(self.keys.shard_of(fp), []).append(fp)
        if not by_shard:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        order = list(by_shard.items())
        for shard, lst in order:
            pipe.hmget(self.keys.alerts(shard), lst)
        out: dict[str, Alert] = {}
        for (_shard, lst), recs in zip(order, await pipe.execute()):
            for fp, rec in zip(lst, recs):
                if rec is not None:
                    out[fp] = decode_record(fp, rec)
        return out

    async def all(self) -> list[Alert]:
        out: list[Alert] = []
        for shard in range(self.keys.shards):
            async for fp, rec in self.redis.hscan_iter(self.keys.alerts(shard), count=1000):
                out.append(decode_record(fp.decode() if isinstance(fp, bytes) else fp, rec))
        return out

    async def firing_fingerprints(self, now: float) -> list[str]:
        """The fingerprints of the alerts firing at `now` (not resolved_at(now)), from the end-time index alone:
        one pipeline, no record decoded."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.zrangebyscore(self.keys.alert_ends(shard), f"({ms(now)}", "+inf")
            pipe.zrangebyscore(self.keys.alert_ends(shard), 0, 0)  # no end time at all
        return [fp.decode() if isinstance(fp, bytes) else fp for fps in await pipe.execute() for fp in fps]

    async def sweep(self, cutoff: float, limit: int = 1000) -> int:
        n = 0
        for shard in range(self.keys.shards):
            n += int(await self.scripts.sweep_resolved_alerts(
                keys=[self.keys.alerts(shard), self.keys.alert_ends(shard), self.keys.alerts_grouped(shard)],
                args=[ms(cutoff), limit]))
        return n

    async def sweep_all(self, cutoff: float, limit: int) -> int:
        """`sweep`, every shard in one round trip (replay's sweeper, in event time)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            queue_script(pipe, self.scripts.sweep_resolved_alerts,
                         keys=[self.keys.alerts(shard), self.keys.alert_ends(shard), self.keys.alerts_grouped(shard)],
                         args=[ms(cutoff), limit])
        return sum(int(n) for n in await pipe.execute())

    async def count_firing(self, now: float) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.zcount(self.keys.alert_ends(shard), f"({ms(now)}", "+inf")
        return sum(int(x) for x in await pipe.execute())
