"""Online throughput: how many series one process evaluates per 60 s step.

    python3 bench/detect/online.py [--series 500] [--backfill-days 1] [--redis redis://127.0.0.1:6379]

Backfills N series (one day at a 60 s step), then times steady steps: one new point per series through the
default detector, plus saving every state to Redis (DetectStore, as the runner does each step). Prometheus time
is not included (one query_range per query per step, whatever the number of series it returns). Prints the
per-series cost and the number of series a 60 s step leaves room for.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from service.detect.core import SeriesDetector, period_points  # noqa: E402
from service.detect.params import DetectorParams  # noqa: E402
from service.store.detect import DetectKeys, DetectStore  # noqa: E402


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=500)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--backfill-days", type=int, default=1,
                    help="days of 60 s points first (4 fill the two-week-at-5-minutes history of the knn novelty)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a DetectorParams default (e.g. knn_long_points=0 for the tree before it)")
    a = ap.parse_args()
    import redis.asyncio as aioredis

    r = aioredis.from_url(a.redis)
    store = DetectStore(r, DetectKeys(f"bench-online-{time.time_ns()}", 16))
    rng = np.random.default_rng(0)
    p = DetectorParams(**{k: json.loads(v) for k, v in (x.split("=", 1) for x in a.set)})
    n0 = 1440 * a.backfill_days
    t = 1.7e9 + 60.0 * np.arange(n0 + a.steps)
    data = rng.normal(100, 5, (a.series, n0 + a.steps))
    dets = [SeriesDetector(p, period_points(60)) for _ in range(a.series)]
    for i, d in enumerate(dets):  # as the runner does: the series re-index their novelty at different steps
        d.knn_phase = i * p.knn_refit // a.series
    t0 = time.perf_counter()
    for d, x in zip(dets, data):
        d.update(t[:n0], x[:n0])
    backfill = time.perf_counter() - t0
    per_step, per_cpu = [], []
    for k in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        states = {}
        for i, (d, x) in enumerate(zip(dets, data)):
            d.update(t[n0 + k:n0 + k + 1], x[n0 + k:n0 + k + 1])
            states[f"s{i}"] = d.dump()
        await store.save(states)
        per_step.append(time.perf_counter() - t0)
        per_cpu.append(time.process_time() - c0)
    loaded = time.perf_counter()
    await store.load([f"s{i}" for i in range(a.series)])
    load_s = time.perf_counter() - loaded
    for shard in range(16):
        await r.delete(store.keys.state(shard))
    await r.aclose()
    step, cpu = float(np.median(per_step)), float(np.median(per_cpu))
    print(f"series={a.series} backfill({a.backfill_days} d)={backfill:.1f}s step median wall={step:.3f}s cpu={cpu:.3f}s; "
          f"per series {1000 * step / a.series:.2f} ms wall, {1000 * cpu / a.series:.2f} ms CPU (detector + state "
          f"to Redis); load all states={load_s:.2f}s; capacity at a 60 s step: {int(60 / (step / a.series))} "
          f"series per process by wall time, {int(60 / (cpu / a.series))} by CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
