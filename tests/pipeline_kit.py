"""A small kit for driving the real pipeline (Engine on a real Redis) in event time with a ManualClock."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from service.alerts import parse_postable
from service.clock import ManualClock
from service.config import Config, parse_config
from service.engine import Engine, recording_factory
from service.models import Notification

T0 = 1_800_000_000.0


def make_config(yaml_text: str, prefix: str) -> Config:
    cfg = parse_config(yaml_text)
    cfg.tocsin.redis.key_prefix = prefix
    return cfg


@dataclass
class Harness:
    engine: Engine
    clock: ManualClock
    sent: list[Notification] = field(default_factory=list)

    async def post(self, *alerts: dict[str, Any]) -> None:
        parsed, errors = parse_postable(list(alerts), self.clock.now(), self.engine.cfg.resolve_timeout)
        assert not errors, errors
        await self.engine.ingest(parsed)

    async def advance_to(self, t: float) -> None:
        """Move time to T0 + t, firing every timer that falls due on the way at its due time."""
        target = T0 + t
        while True:
            nxt = await self.engine.next_due()
            if nxt is None or nxt > target:
                break
            self.clock.set(nxt)
            await self.engine.step()
        self.clock.set(target)
        await self.engine.step()

    def summary(self) -> list[tuple[float, str, str, list[tuple[str, str]]]]:
        """(time offset, group key, status, [(alertname-ish id, alert status)]) per notification."""
        out = []
        for n in self.sent:
            alerts = sorted((a.labels.get("id", a.labels.get("alertname", "")),
                             "resolved" if a.resolved_at(n.timestamp) else "firing") for a in n.alerts)
            out.append((round(n.timestamp - T0, 3), n.group_key, n.status, alerts))
        return out


async def harness(redis: Redis, yaml_text: str, prefix: str, consumer: str = "test",
                  sent: list[Notification] | None = None, clock: ManualClock | None = None) -> Harness:
    cfg = make_config(yaml_text, prefix)
    clock = clock or ManualClock(T0)
    sink = sent if sent is not None else []
    engine = Engine(cfg, redis, clock, consumer=consumer, receiver_factory=recording_factory(sink))
    await engine.start()
    return Harness(engine, clock, sink)
