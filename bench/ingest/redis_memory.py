"""Redis memory per active alert: INFO memory before and after ingesting N alerts through Tocsin's real ingest
path (Engine.ingest: alert store + group membership + timers), then after the groups flushed and their
notifications were delivered (notification log, delivery state; outbox entries are deleted once delivered).

    python bench/ingest/redis_memory.py [--alerts 10000 50000] [--services 200] [--redis-url URL]

Without --redis-url (and without REDIS_URL) it starts a private embedded redis-server, so nothing else shares
the numbers. Alerts have the side-by-side benchmark's shape (5 labels, 2 annotations, generatorURL).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis.asyncio as aioredis  # noqa: E402

from service.core.clock import ManualClock  # noqa: E402
from service.config.sections import EnvSettings, parse_config  # noqa: E402
from service.store.embedded import EmbeddedRedis  # noqa: E402
from service.pipeline.engine import Engine, recording_factory  # noqa: E402
from service.core.models import Alert, Notification  # noqa: E402

CONFIG = """
route:
  receiver: hook
  group_by: [service]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:9/hook
        send_resolved: true
"""


def make_alerts(n: int, services: int, now: float) -> list[Alert]:
    return [Alert(labels={"alertname": "AnomalyDetected", "service": f"svc-{i % services}", "metric": f"m{i}",
                          "instance": f"10.0.{i // 250 % 250}.{i % 250}:9100", "severity": "warning"},
                  annotations={"summary": f"metric m{i} is anomalous", "score": "4.2"},
                  starts_at=now - 60, ends_at=now + 300, timeout=True, updated_at=now,
                  generator_url="http://prometheus.local/graph")
            for i in range(n)]


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def measure(url: str, n: int, services: int) -> dict[str, object]:
    prefix = f"mem{uuid.uuid4().hex[:8]}"
    # A blocking pool: the scheduler flushes up to 128 groups at once, more than redis-py's default pool of 100
    # connections allows (it raises MaxConnectionsError; see bench/README.md).
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=64))
    clock = ManualClock(1_800_000_000.0)
    sink: list[Notification] = []
    cfg = parse_config(CONFIG, env=EnvSettings(tocsin_key_prefix=prefix))
    engine = Engine(cfg, client, clock, consumer="mem", receiver_factory=recording_factory(sink))
    await engine.start()
    before = await used_memory(client)
    alerts = make_alerts(n, services, clock.now())
    for i in range(0, n, 256):  # Prometheus' batch size
        await engine.ingest(alerts[i:i + 256])
    after_ingest = await used_memory(client)
    clock.advance(2)
    while await engine.step():
        pass
    after_flush = await used_memory(client)
    keys = 0
    by_kind: dict[str, int] = {}
    async for k in client.scan_iter(match=f"{prefix}:*", count=1000):  # measurement only
        keys += 1
        # "P:{s3}:gm:<gid>" -> "gm"; "P:{s3}:alerts:ends" -> "alerts:ends"
        kind = ":".join(p for p in k.decode().split(":")[2:] if len(p) < 16) or "?"
        by_kind[kind] = by_kind.get(kind, 0) + int(await client.memory_usage(k, samples=0) or 0)
    async for k in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(k)
    await engine.close()
    await client.aclose()
    return {"alerts": n, "groups": services, "redis_keys": keys, "notifications": len(sink),
            "bytes_per_alert_after_ingest": round((after_ingest - before) / n),
            "bytes_per_alert_after_flush_and_delivery": round((after_flush - before) / n),
            "used_memory_delta_mib": round((after_flush - before) / 2**20, 1),
            "bytes_per_alert_by_key_kind_after_flush": {k: round(v / n) for k, v in sorted(by_kind.items())}}


async def main(a: argparse.Namespace) -> None:
    url = a.redis_url or os.environ.get("REDIS_URL")
    embedded = None
    if not url:
        embedded = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-mem-"), persist=False)
        url = embedded.start()
    try:
        client = aioredis.from_url(url)
        info = await client.info("server")
        mem = await client.info("memory")
        await client.aclose()
        print(json.dumps({"redis_version": info["redis_version"], "allocator": mem.get("mem_allocator"),
                          "embedded": embedded is not None}))
        for n in a.alerts:
            print(json.dumps(await measure(url, n, a.services)), flush=True)
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alerts", type=int, nargs="+", default=[10000, 50000])
    p.add_argument("--services", type=int, default=200)
    p.add_argument("--redis-url")
    asyncio.run(main(p.parse_args()))
