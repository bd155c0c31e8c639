"""GET /ui/ with 1,000 open incidents: median and p95, next to GET /api/v1/incidents in the same run (the UI
reads incidents through the same store call, so the API is the baseline it can be compared with).

    python -m bench.ui.bench_list [--incidents 1000] [--requests 40]   # REDIS_URL, else a private embedded Redis

1,000 unrelated alerts (own service each, onsets 400 s apart: beyond the correlation window) make 1,000 open
incidents. The app is the real one (create_app) on a loopback port; requests go through aiohttp's client with a
browser session (cookie). Wall-clock timing here is measurement, never logic."""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid

import aiohttp

from bench.ui.scenario import T0, start
from service.ingest.alerts import parse_postable
from service.core.clock import to_rfc3339
from service.ui.handlers import PAGE_SIZE, _unassigned

CONFIG = """
global: {resolve_timeout: 5m}
route:
  receiver: oncall
  group_by: [service]
  tocsin: {min_confidence: 0}
receivers:
  - {name: oncall, webhook_configs: [{url: "http://127.0.0.1:1/oncall"}]}
tocsin:
  correlation: {enabled: true, window: 300}
"""
NAMES = ["HighLatency", "Http5xxRateHigh", "HighCPUUsage", "DiskIOSaturation", "KafkaConsumerLagHigh"]


async def timed(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        async with session.get(url) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(round(0.95 * len(xs))) - 1)]


async def main(n_incidents: int, n_requests: int) -> None:
    embedded = None
    url = os.environ.get("REDIS_URL")
    if not url:
        from service.store.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-ui-bench-"), persist=False)
        url = embedded.start()
    prefix = f"uibench{uuid.uuid4().hex[:6]}"
    env = await start(url, prefix, config=CONFIG)
    try:
        t0 = time.perf_counter()
        for i in range(n_incidents):
            at = T0 + i * 400
            env.clock.set(at)
            a = {"labels": {"alertname": NAMES[i % len(NAMES)], "service": f"svc-{i:04d}", "severity": "warning"},
                 "annotations": {"summary": f"alert {i}"}, "startsAt": to_rfc3339(at),
                 "endsAt": to_rfc3339(T0 + 10 ** 7)}
            alerts, errors = parse_postable([a], at, env.engine.cfg.resolve_timeout)
            assert not errors, errors
            await env.engine.ingest(alerts)  # what POST /api/v2/alerts does, without the HTTP round trip
        open_n = len(await env.engine.incidents.list(limit=10 ** 6, state="triggered"))
        print(f"setup: {n_incidents} alerts -> {open_n} open incidents in {time.perf_counter() - t0:.1f}s")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            await s.get(env.base + "/ui/")  # session cookie
            await timed(s, env.base + "/api/v1/incidents", 3)  # warm-up
            await timed(s, env.base + "/ui/", 3)
            api, ui, js, store, unassigned = [], [], [], [], []
            for _ in range(n_requests // 10):  # interleaved, so all see the same machine load
                api += await timed(s, env.base + "/api/v1/incidents", 10)
                ui += await timed(s, env.base + "/ui/", 10)
                js += await timed(s, env.base + "/ui/incidents.json", 10)
                for _ in range(10):
                    t = time.perf_counter()
                    await env.engine.incidents.list(limit=PAGE_SIZE)
                    store.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    await _unassigned(env.engine)
                    unassigned.append((time.perf_counter() - t) * 1000)
        print(f"{'request':30} {'median ms':>10} {'p95 ms':>10} {'ratio to API (median)':>22}")
        base = statistics.median(api)
        for name, xs in (("GET /api/v1/incidents", api), ("GET /ui/", ui), ("GET /ui/incidents.json", js),
                         (f"IncidentStore.list({PAGE_SIZE})", store), ("unassigned count", unassigned)):
            print(f"{name:30} {statistics.median(xs):10.1f} {p95(xs):10.1f} {statistics.median(xs) / base:22.2f}")
        print(f"({len(api)} requests each; the API lists the newest 100 incidents, the UI page the newest "
              f"{PAGE_SIZE}; the last two lines are the UI's two Redis reads, in-process)")
    finally:
        async for k in env.engine.redis.scan_iter(match=f"{prefix}*", count=1000):
            await env.engine.redis.delete(k)
        await env.close()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    asyncio.run(main(args.incidents, args.requests))
