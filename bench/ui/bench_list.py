"""GET /ui/ with 1,000 open incidents: median and p95, next to GET /api/v1/incidents in the same run (the UI
reads incidents through the same store call, so the API is the baseline it can be compared with).

    python -m bench.ui.bench_list [--incidents 1000] [--requests 40] [--baseline REV]
                                                          # REDIS_URL, else a private embedded Redis

`--baseline REV` measures the same requests with service/incidents/store.py and the UI's list reads
(`_incident_rows` and `_unassigned` of service/http/ui/handlers.py, formerly service/ui/) as they were at git
revision REV too, in the same process and on the same data: the old IncidentStore is built beside the current
one, and the two variants take turns every ten requests, so both see the same machine load.

1,000 unrelated alerts (own service each, onsets 400 s apart: beyond the correlation window) make 1,000 open
incidents. The app is the real one (create_app) on a loopback port; requests go through aiohttp's client with a
browser session (cookie). Wall-clock timing here is measurement, never logic."""
from __future__ import annotations

import argparse
import ast
import asyncio
import importlib.util
import os
import subprocess
import sys
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp

from bench.ui.scenario import T0, start
from service.ingest.alerts import parse_postable
from service.core.clock import to_rfc3339
from service.http.ui import handlers
from service.http.ui.handlers import FILTERED_SCAN, PAGE_SIZE

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


def source_at(rev: str, *paths: str) -> tuple[str, str]:
    """(path, text) of the first of `paths` that exists at git revision `rev` (files move between revisions)."""
    for path in paths:
        r = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        if r.returncode == 0:
            return path, r.stdout
    raise FileNotFoundError(f"none of {paths} at {rev}")


def module_at(rev: str, *paths: str) -> Any:
    """The module at the first of `paths` as it was at git revision `rev`, loaded beside the current one."""
    path, src = source_at(rev, *paths)
    spec = importlib.util.spec_from_loader(f"_at_{rev}_{path.replace('/', '_')[:-3]}", loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod


def function_at(rev: str, name: str, *paths: str) -> Any:
    """Just the module-level function `name` of the first of `paths` at `rev` (not its module, whose imports may
    name modules that have moved since), run with the current module's globals."""
    path, src = source_at(rev, *paths)
    node = next(n for n in ast.parse(src).body if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
                and n.name == name)
    ns = dict(vars(handlers))
    exec(compile(ast.Module(body=[node], type_ignores=[]), f"{rev}:{path}", "exec"), ns)
    return ns[name]


@dataclass
class Variant:
    """What the UI reads through: the incident store and the UI's count of alerts in no incident."""
    incidents: Any
    unassigned: Callable[[Any], Awaitable[int]]
    incident_rows: Callable[..., Awaitable[Any]]

    def use(self, engine: Any) -> None:
        engine.incidents = self.incidents
        handlers._unassigned = self.unassigned
        handlers._incident_rows = self.incident_rows


def baseline(rev: str, current: Any) -> Variant:
    """service/incidents/store.py and the UI's unassigned count as they were at `rev`, on the same Redis and keys."""
    c = current
    store = module_at(rev, "service/incidents/store.py")
    paths = ("service/http/ui/handlers.py", "service/ui/handlers.py")
    return Variant(store.IncidentStore(c.redis, c.prefix, c.clock, c.cfg, external_url=c.external_url),
                   function_at(rev, "_unassigned", *paths), function_at(rev, "_incident_rows", *paths))


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


async def measure(env: Any, stores: dict[str, Variant], n_requests: int) -> dict[str, list[float]]:
    """Milliseconds per request (and per in-process read), by name; a baseline store's names carry its tag."""
    results: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        await s.get(env.base + "/ui/")  # session cookie
        for st in stores.values():
            st.use(env.engine)
            await timed(s, env.base + "/api/v1/incidents", 3)  # warm-up
            await timed(s, env.base + "/ui/", 3)
        for _ in range(n_requests // 10):  # interleaved, so all see the same machine load
            for tag, st in stores.items():
                st.use(env.engine)
                for name, url, n in (("GET /api/v1/incidents", "/api/v1/incidents", 10), ("GET /ui/", "/ui/", 10),
                                     ("GET /ui/incidents.json", "/ui/incidents.json", 10),
                                     ("GET /ui/?service=svc-0007", "/ui/?service=svc-0007", 2)):
                    results.setdefault(name + tag, []).extend(await timed(s, env.base + url, n))
                for _ in range(10):
                    t = time.perf_counter()
                    await st.incidents.list(limit=PAGE_SIZE)
                    results.setdefault(f"IncidentStore.list({PAGE_SIZE})" + tag, []).append(
                        (time.perf_counter() - t) * 1000)
                for _ in range(10):
                    t = time.perf_counter()
                    await st.unassigned(env.engine)
                    results.setdefault("unassigned count" + tag, []).append((time.perf_counter() - t) * 1000)
        stores[""].use(env.engine)
    return results


def report(results: dict[str, list[float]], baseline: str) -> None:
    print(f"{'request':40} {'median ms':>10} {'p95 ms':>10} {'ratio to API (median)':>22}")
    base = statistics.median(results["GET /api/v1/incidents"])
    for name, xs in results.items():
        print(f"{name:40} {statistics.median(xs):10.1f} {p95(xs):10.1f} {statistics.median(xs) / base:22.2f}")
    if baseline:
        print(f"{'current / baseline (median, p95)':40}")
        for name in results:
            if name + f" @{baseline}" in results:
                old = results[name + f" @{baseline}"]
                new = results[name]
                print(f"  {name:38} {statistics.median(new) / statistics.median(old):10.2f} "
                      f"{p95(new) / p95(old):10.2f}")
    print(f"({len(results['GET /api/v1/incidents'])} requests each (the filtered page a fifth as many); the API lists "
          f"the newest 100 incidents, the UI page the newest {PAGE_SIZE}, the filtered page looks through up to "
          f"{FILTERED_SCAN}; the last lines are the UI's two Redis reads, in-process)")


async def main(n_incidents: int, n_requests: int, rev: str = "") -> None:
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
        stores = {"": Variant(env.engine.incidents, handlers._unassigned, handlers._incident_rows)}
        if rev:
            stores[f" @{rev}"] = baseline(rev, env.engine.incidents)
        report(await measure(env, stores, n_requests), rev)
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
    ap.add_argument("--baseline", default="", help="also measure service/incidents/store.py at this git revision")
    args = ap.parse_args()
    asyncio.run(main(args.incidents, args.requests, args.baseline))
