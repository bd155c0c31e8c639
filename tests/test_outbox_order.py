"""Outbox.drain (what replay and the step-driven tests deliver with) sends in the outbox's order, whatever each
send takes: replay prints the same notifications in the same order every run."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from routing.receivers.base import Delivered
from service.core.clock import to_rfc3339
from service.store.keys import CONSUMER_GROUP
from tests.pipeline_kit import T0, harness

CONFIG = """
global: {resolve_timeout: 4h}
route:
  receiver: hook
  group_by: [service]
  group_wait: 10s
  group_interval: 30s
receivers:
  - name: hook
    webhook_configs:
      - {url: "http://127.0.0.1:9/hook", send_resolved: true}
"""


async def test_drain_delivers_in_outbox_order_even_when_the_first_send_is_slow(redis, key_prefix):
    sent: list[str] = []
    slow: set[str] = set()

    class Receiver:
        async def send(self, n: Any, state: Any = None) -> Delivered:
            if n.group_labels["service"] in slow:
                for _ in range(50):  # a slow receiver (or a slow Redis reply): other lanes would overtake it
                    await asyncio.sleep(0)
            sent.append(n.group_labels["service"])
            return Delivered()

        async def close(self) -> None:
            return None

    h = await harness(redis, CONFIG, key_prefix, consumer="c",
                      receiver_factory=lambda integration, kind, c, cfg, clock: Receiver())
    engine = h.engine
    try:
        await h.post(*[{"labels": {"alertname": "A", "service": s}, "startsAt": to_rfc3339(T0)} for s in "abcdefgh"])
        h.clock.set(T0 + 11)
        await engine.scheduler.run_due()
        queued: list[str] = []  # the outbox's order: each shard's stream, shard by shard
        for shard in range(engine.keys.shards):
            for _id, fields in await redis.xrange(engine.keys.outbox(shard)):
                n = json.loads(fields[b"n"])
                queued.append(n["group_labels"]["service"])
        assert sorted(queued) == list("abcdefgh")
        slow.update(queued[:4])  # the first half is slow
        assert await engine.outbox.drain() == 8
        assert sent == queued
        for shard in range(engine.keys.shards):  # and every entry is acknowledged
            assert (await redis.xpending(engine.keys.outbox(shard), CONSUMER_GROUP))["pending"] == 0
    finally:
        await engine.close()
